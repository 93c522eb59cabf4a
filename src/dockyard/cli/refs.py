"""Image reference splitting as the CLI sends it (`fromImage`+`tag`, `repo`+`tag`)."""

from __future__ import annotations


def normalize_image_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) the way the CLI pulls: a missing tag means `latest`.

    A digest reference keeps its digest in `tag` ("sha256:…"), as `fromImage`+`tag` expect.
    """
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
        return name, tag
    return ref, "latest"


def normalized_name(ref: str) -> str:
    """reference.ParseNormalizedNamed(ref).String(): Docker Hub names get `docker.io/` (and
    `library/` for official images); a tag or digest stays, none is added."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return ref
    if not sep:
        return f"docker.io/library/{ref}"
    return f"docker.io/{ref}"
