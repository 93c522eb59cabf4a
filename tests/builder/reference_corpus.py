"""Dockerfiles written from the Dockerfile reference, section by section, for the differential
corpus of tests/builder/test_reference.py (issue 18): each checks something the other cases do
not, and its name starts with the section it covers. Built by the reference dockerd 20.10's
legacy builder and by dockyard with `--build-arg SRC=f2`, compared file by file and field by
field.

`SECTIONS` maps a case to (Dockerfile, context files); `SPECIAL` makes what a dict of texts
cannot say (links, modes, fifos, times). `ERRORS` are Dockerfiles both builders refuse, with a
part of the message they both give.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

Case = tuple[str, dict[str, str | bytes]]

SECTIONS: dict[str, Case] = {
    # -- Parser directives ---------------------------------------------------------------
    "directive-escape-backtick-in-paths": (
        "# escape=`\nFROM busybox\nRUN echo a\\b > /bs `\n && echo c > /c\n",
        {},
    ),
    "directive-case-and-spaces": (
        "#  ESCAPE = `\nFROM busybox\nRUN echo one `\n two > /joined\n",
        {},
    ),
    "directive-after-comment-is-a-comment": (
        "# a comment\n# escape=`\nFROM busybox\nRUN echo back\\\n slash > /f\n",
        {},
    ),
    "directive-unknown-is-a-comment": (
        "# frobnicate=yes\nFROM busybox\nRUN echo ok > /ok\n",
        {},
    ),
    # -- Environment replacement ---------------------------------------------------------
    "envsubst-modifiers": (
        """\
FROM busybox
ENV SET=value EMPTY=
ENV A=${SET:-dflt} B=${UNSET:-dflt} C=${SET:+alt} D=${UNSET:+alt} E=${EMPTY:-dflt} F=${EMPTY:+alt}
LABEL a=$A b=$B c=$C d=$D e=$E f=$F
""",
        {},
    ),
    "envsubst-escapes-and-quotes": (
        """\
FROM busybox
ENV V=val
ENV A=\\$V B='$V' C="$V" D="\\$V" E=a\\ b F="x"'y'z
LABEL "q"="$A|$B|$C|$D|$E|$F"
""",
        {},
    ),
    "envsubst-in-copy-workdir-user-expose": (
        """\
FROM busybox
ENV SRC=f DIR=/target U=1234 P=8080 SIG=SIGTERM
WORKDIR ${DIR}/w
COPY $SRC ${DIR}/
COPY ${SRC} ./rel-$SRC
USER ${U}:${U}
EXPOSE $P ${P}/udp
STOPSIGNAL $SIG
VOLUME ${DIR}/vol
""",
        {"f": "f\n"},
    ),
    "envsubst-not-in-run-exec-form": (
        """\
FROM busybox
ENV V=val
RUN ["sh", "-c", "echo $V > /shell-expands"]
RUN ["echo", "$V"]
CMD ["echo", "$V"]
""",
        {},
    ),
    "envsubst-nested-default": (
        """\
FROM busybox
ENV X=x
ENV A=${UNSET:-${X}} B=${UNSET:-$X-suffix} C=pre${X}post
LABEL a=$A b=$B c=$C
""",
        {},
    ),
    # -- .dockerignore -------------------------------------------------------------------
    "dockerignore-exceptions": (
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "*.log\n!keep.log\ntmp\n# comment\n",
            "a.log": "a\n",
            "keep.log": "k\n",
            "tmp/x": "x\n",
            "ok.txt": "ok\n",
        },
    ),
    "dockerignore-double-star": (
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "**/*.o\n**/cache\ndocs/**/draft*\n",
            "a.o": "o\n",
            "src/b.o": "o\n",
            "src/deep/c.o": "o\n",
            "src/deep/c.c": "c\n",
            "x/cache/y": "y\n",
            "docs/a/b/draft1": "d\n",
            "docs/final": "f\n",
        },
    ),
    "dockerignore-leading-slash-and-dot": (
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "/top\n./dot\nsub/../up\n",
            "top": "t\n",
            "sub/top": "st\n",
            "dot": "d\n",
            "up": "u\n",
            "keep": "k\n",
        },
    ),
    "dockerignore-excludes-itself-and-dockerfile": (
        "FROM busybox\nCOPY . /ctx/\n",
        {".dockerignore": "Dockerfile\n.dockerignore\n", "f": "f\n"},
    ),
    "dockerignore-dir-then-exception-inside": (
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "vendor\n!vendor/keep\n",
            "vendor/drop": "d\n",
            "vendor/keep": "k\n",
        },
    ),
    # -- FROM ----------------------------------------------------------------------------
    "from-scratch-copy": (
        'FROM scratch\nCOPY f /f\nCOPY d /d/\nENV PATH=/bin\nCMD ["/f"]\n',
        {"f": "f\n", "d/x": "x\n"},
    ),
    "from-arg-before-from-redeclared": (
        """\
ARG BASE=busybox
ARG V=outer
FROM ${BASE}
ARG V
ARG BASE
RUN echo "$V $BASE" > /seen
LABEL v=$V
""",
        {},
    ),
    "from-stage-as-base-and-names-case": (
        """\
FROM busybox AS Builder
RUN echo b > /b
FROM builder AS second
RUN echo s > /s
FROM SECOND
RUN cat /b /s > /both
""",
        {},
    ),
    # -- RUN -----------------------------------------------------------------------------
    "run-continuations-and-comments": (
        """\
FROM busybox
RUN echo a \\
# a comment inside the continuation
    b \\

    c > /abc
RUN echo "quoted \\\\ backslash" > /q && printf '%s\\n' one two > /printf
""",
        {},
    ),
    "run-exec-form-json-details": (
        """\
FROM busybox
RUN ["/bin/sh", "-c", "echo \\"json escapes\\" > /j && echo \\u0041 > /u"]
RUN [ "sh" , "-c" , "touch /spaced" ]
""",
        {},
    ),
    "run-not-json-is-shell": (
        "FROM busybox\nRUN [echo, not-json] || echo fallback > /f\n",
        {},
    ),
    "run-env-and-arg-visibility": (
        """\
FROM busybox
ARG A=arg
ENV E=env
RUN env | grep -E '^(A|E)=' | sort > /visible
ARG B
RUN echo "b=$B" > /b
""",
        {},
    ),
    "run-changes-ownership-and-modes": (
        """\
FROM busybox
RUN mkdir -p /o/d && touch /o/f /o/d/g && chown -R 1:2 /o && chmod 0640 /o/f \\
 && chmod 2750 /o/d && touch -d '2001-02-03 04:05:06' /o/f
RUN chown 3:3 /o/d/g && chmod u+s /o/d/g
""",
        {},
    ),
    "run-deletes-and-recreates": (
        """\
FROM busybox
RUN mkdir -p /x/y && echo 1 > /x/y/z && echo 2 > /x/w
RUN rm -rf /x && mkdir /x && echo 3 > /x/new
RUN rm /bin/vi && ln -s /bin/busybox /bin/vi2
""",
        {},
    ),
    # -- CMD / ENTRYPOINT ----------------------------------------------------------------
    "cmd-entrypoint-shell-and-exec": (
        """\
FROM busybox AS a
ENTRYPOINT ["/bin/echo", "e"]
CMD ["c1", "c2"]
FROM a AS b
ENTRYPOINT echo shell-form
FROM b
CMD echo cmd-shell
""",
        {},
    ),
    "cmd-entrypoint-reset-by-entrypoint": (
        """\
FROM busybox AS base
CMD ["base-cmd"]
FROM base
ENTRYPOINT ["/bin/true"]
""",
        {},
    ),
    "cmd-empty-json": (
        "FROM busybox\nCMD []\nENTRYPOINT []\n",
        {},
    ),
    # -- LABEL ---------------------------------------------------------------------------
    "label-forms-and-override": (
        """\
FROM busybox AS base
LABEL a=1 b=2
FROM base
LABEL b=override "c d"="e f" g=multi\\
word
""",
        {},
    ),
    # -- EXPOSE --------------------------------------------------------------------------
    "expose-forms": (
        "FROM busybox\nEXPOSE 80 80/tcp 443/TCP 53/udp 1000-1002 7/sctp\n",
        {},
    ),
    # -- ENV -----------------------------------------------------------------------------
    "env-old-form-and-spaces": (
        """\
FROM busybox
ENV ONE value with   spaces
ENV TWO=a THREE="b  c"   FOUR=d\\ e
ENV FIVE ""
""",
        {},
    ),
    "env-inherited-and-path": (
        """\
FROM busybox AS base
ENV PATH=/base/bin:$PATH KEEP=base
FROM base
ENV PATH=$PATH:/child/bin NEW=1
RUN echo $PATH > /path
""",
        {},
    ),
    # -- ADD -----------------------------------------------------------------------------
    "add-directory-and-file-rules": (
        """\
FROM busybox
ADD d /added-dir
ADD f /added-file
ADD f d/ /multi/
ADD ["f", "/json form/"]
""",
        {"f": "f\n", "d/x": "x\n", "d/sub/y": "y\n"},
    ),
    "add-chown-names-from-passwd": (
        """\
FROM busybox
ADD --chown=nobody:nogroup f /n
ADD --chown=daemon d /dd/
COPY --chown=nobody:1 f /w
""",
        {"f": "f\n", "d/x": "x\n"},
    ),
    "add-tar-with-owners-and-links": (
        "FROM busybox\nADD owners.tar /o/\n",
        {},
    ),
    # -- COPY ----------------------------------------------------------------------------
    "copy-wildcards": (
        """\
FROM busybox
COPY *.txt /stars/
COPY file?.md /question/
COPY [ab].c /class/
COPY dir* /dirs/
""",
        {
            "a.txt": "a\n",
            "b.txt": "b\n",
            "file1.md": "1\n",
            "file22.md": "22\n",
            "a.c": "a\n",
            "c.c": "c\n",
            "dir1/x": "x\n",
            "dir2/y": "y\n",
        },
    ),
    "copy-relative-dest-and-trailing-slash": (
        """\
FROM busybox
WORKDIR /work
COPY f .
COPY f sub/
COPY f renamed
COPY d .
COPY d ./d2
""",
        {"f": "f\n", "d/x": "x\n"},
    ),
    "copy-hardlinks-in-context": (
        "FROM busybox\nCOPY tree /t/\nCOPY tree/a /single\n",
        {"tree/a": "a\n"},
    ),
    "copy-special-files-in-context": (
        "FROM busybox\nCOPY tree /t/\n",
        {"tree/f": "f\n"},
    ),
    "copy-mtimes-and-empty-dirs": (
        "FROM busybox\nCOPY tree /t/\nCOPY tree/old /old-file\n",
        {"tree/old": "o\n"},
    ),
    "copy-unicode-and-odd-names": (
        """\
FROM busybox
COPY ["ünï cødé.txt", "/u/"]
COPY ["a b", "/spaced dest/"]
COPY --chown=1:1 ["dash-start", "/-dash"]
""",
        {"ünï cødé.txt": "u\n", "a b/c d": "cd\n", "dash-start": "d\n"},
    ),
    "copy-onto-existing-dir-owner": (
        """\
FROM busybox
RUN mkdir -p /exists && chown 5:5 /exists && chmod 700 /exists
COPY --chown=1:1 d /exists
COPY --chown=2:2 f /exists/
""",
        {"d/x": "x\n", "f": "f\n"},
    ),
    "copy-modes-from-context": (
        "FROM busybox\nCOPY . /ctx/\n",
        {"ro": "r\n", "exec": "e\n", "dir/private": "p\n"},
    ),
    "copy-replaces-dir-with-file-and-back": (
        """\
FROM busybox
RUN mkdir -p /a/x && touch /a/x/inner && echo old > /b && mkdir /c && ln -s /c /clink
COPY f /a/x
COPY d /clink
""",
        {"f": "f\n", "d/y": "y\n"},
    ),
    # -- VOLUME --------------------------------------------------------------------------
    "volume-forms-and-inherited": (
        """\
FROM busybox AS base
VOLUME /a
FROM base
VOLUME ["/b", "/c"]
VOLUME /d /e
VOLUME /a
""",
        {},
    ),
    # -- USER ----------------------------------------------------------------------------
    "user-forms-and-copy-unaffected": (
        """\
FROM busybox
USER nobody
COPY f /by-copy
RUN id -u > /tmp/uid
USER 1000
RUN id > /tmp/id1000
USER daemon:daemon
USER root:root
""",
        {"f": "f\n"},
    ),
    # -- WORKDIR -------------------------------------------------------------------------
    "workdir-chains-and-env": (
        """\
FROM busybox
ENV BASE=/srv
WORKDIR $BASE
WORKDIR app
WORKDIR ../other/./x
WORKDIR /abs//double/
RUN pwd > /pwd
""",
        {},
    ),
    "workdir-with-user-and-existing": (
        """\
FROM busybox
USER 1:1
WORKDIR /as-user
USER root
RUN mkdir /pre && chown 7:7 /pre
USER 2:2
WORKDIR /pre
WORKDIR /pre/newsub
""",
        {},
    ),
    # -- ARG -----------------------------------------------------------------------------
    "arg-scope-across-stages": (
        """\
ARG GLOBAL=g
FROM busybox AS one
ARG LOCAL=l1
ARG GLOBAL
RUN echo "$GLOBAL $LOCAL" > /one
FROM busybox
RUN echo "[$GLOBAL] [$LOCAL]" > /two
ARG LOCAL=l2
RUN echo "$LOCAL" > /three
""",
        {},
    ),
    "arg-predefined-proxies-not-in-history": (
        """\
FROM busybox
ARG HTTP_PROXY
ARG no_proxy=localhost
RUN echo "$HTTP_PROXY|$no_proxy" > /proxies
""",
        {},
    ),
    "arg-overridden-by-build-arg-and-env": (
        """\
FROM busybox
ARG SRC=default
RUN echo $SRC > /from-arg
ENV SRC=env-wins
ARG SRC=again
RUN echo $SRC > /after-env
""",
        {},
    ),
    "arg-unused-value-and-empty": (
        """\
FROM busybox
ARG EMPTY=
ARG NOVALUE
RUN echo "[$EMPTY][$NOVALUE]" > /e
""",
        {},
    ),
    # -- ONBUILD -------------------------------------------------------------------------
    "onbuild-several-triggers-recorded": (
        """\
FROM busybox
ONBUILD RUN echo one
ONBUILD COPY f /f
ONBUILD ENV T=1
RUN echo base > /base
""",
        {"f": "f\n"},
    ),
    # -- STOPSIGNAL ----------------------------------------------------------------------
    "stopsignal-forms": (
        "FROM busybox AS a\nSTOPSIGNAL 9\nFROM a AS b\nSTOPSIGNAL SIGUSR1\nFROM b\nSTOPSIGNAL RTMIN+3\n",
        {},
    ),
    # -- HEALTHCHECK ---------------------------------------------------------------------
    "healthcheck-none-and-shell-form": (
        """\
FROM busybox AS a
HEALTHCHECK --interval=1m30s --timeout=2s --start-period=1h --retries=1 CMD wget -q localhost
FROM a AS b
HEALTHCHECK NONE
FROM busybox
HEALTHCHECK CMD ["true"]
HEALTHCHECK CMD echo replaced || exit 1
""",
        {},
    ),
    # -- SHELL ---------------------------------------------------------------------------
    "shell-affects-run-cmd-entrypoint": (
        """\
FROM busybox
SHELL ["/bin/sh", "-xc"]
RUN echo traced > /t
CMD echo cmd
SHELL ["/bin/ash", "-c"]
ENTRYPOINT echo ep
RUN echo $0 > /shell0
""",
        {},
    ),
    # -- Multi-stage ---------------------------------------------------------------------
    "multistage-from-index-image-and-unused": (
        """\
FROM busybox
RUN echo zero > /zero
FROM busybox AS unused
RUN echo never > /never
FROM busybox
COPY --from=0 /zero /z
COPY --from=busybox /bin/true /from-image-true
""",
        {},
    ),
    "multistage-copy-from-dir-rules": (
        """\
FROM busybox AS src
RUN mkdir -p /out/a/b && echo 1 > /out/a/b/c && ln -s a/b /out/link && mkdir /out/empty
FROM busybox
COPY --from=src /out /o1
COPY --from=src /out/ /o2/
COPY --from=src /out/link /o3
COPY --from=src /out/a/b/c /out/link/c /o4/
""",
        {},
    ),
    "multistage-three-deep-layers": (
        """\
FROM busybox AS a
RUN echo a > /a
FROM a AS b
RUN rm /a && echo b > /b
FROM b
RUN echo c > /c && rm /b
""",
        {},
    ),
    # -- Build context: symlinks and links -----------------------------------------------
    "context-symlink-source-followed-at-top": (
        "FROM busybox\nCOPY link-to-file /lf\nCOPY link-to-dir /ld/\nCOPY dir/ /through/\n",
        {"real": "r\n", "realdir/x": "x\n", "dir/inner": "i\n"},
    ),
    "context-relative-and-absolute-links-kept": (
        "FROM busybox\nCOPY links /links/\n",
        {"links/target": "t\n"},
    ),
}


def _owners_tar() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, uid, mode in (
            ("top", tarfile.DIRTYPE, 0, 0o755),
            ("top/owned", tarfile.REGTYPE, 1234, 0o640),
            ("top/suid", tarfile.REGTYPE, 0, 0o4755),
            ("top/link", tarfile.SYMTYPE, 5, 0o777),
            ("top/hard", tarfile.LNKTYPE, 0, 0o640),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = kind, uid, uid, mode
            info.mtime = 1_500_000_000
            info.uname = info.gname = ""
            data = b""
            if kind == tarfile.SYMTYPE:
                info.linkname = "owned"
            elif kind == tarfile.LNKTYPE:
                info.linkname = "top/owned"
            elif kind == tarfile.REGTYPE:
                data = name.encode() + b"\n"
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _hardlinks(ctx: Path) -> None:
    os.link(ctx / "tree" / "a", ctx / "tree" / "a-hard")
    (ctx / "tree" / "sub").mkdir()
    os.link(ctx / "tree" / "a", ctx / "tree" / "sub" / "a-hard2")


def _special_files(ctx: Path) -> None:
    os.mkfifo(ctx / "tree" / "fifo", 0o640)
    (ctx / "tree" / "empty-dir").mkdir()
    (ctx / "tree" / "dangling").symlink_to("nowhere")


def _mtimes(ctx: Path) -> None:
    old = ctx / "tree" / "old"
    os.utime(old, (1_000_000_000, 1_000_000_000))
    (ctx / "tree" / "empty").mkdir()
    os.utime(ctx / "tree" / "empty", (1_100_000_000, 1_100_000_000))
    os.utime(ctx / "tree", (1_200_000_000, 1_200_000_000))


def _modes(ctx: Path) -> None:
    (ctx / "ro").chmod(0o444)
    (ctx / "exec").chmod(0o751)
    (ctx / "dir").chmod(0o700)
    (ctx / "dir" / "private").chmod(0o600)


def _top_links(ctx: Path) -> None:
    (ctx / "link-to-file").symlink_to("real")
    (ctx / "link-to-dir").symlink_to("realdir")


def _kept_links(ctx: Path) -> None:
    (ctx / "links" / "rel").symlink_to("target")
    (ctx / "links" / "abs").symlink_to("/etc/hostname")
    (ctx / "links" / "up").symlink_to("../Dockerfile")
    (ctx / "links" / "dirlink").symlink_to(".")


SPECIAL: dict[str, Callable[[Path], None]] = {
    "copy-hardlinks-in-context": _hardlinks,
    "copy-special-files-in-context": _special_files,
    "copy-mtimes-and-empty-dirs": _mtimes,
    "copy-modes-from-context": _modes,
    "context-symlink-source-followed-at-top": _top_links,
    "context-relative-and-absolute-links-kept": _kept_links,
    "add-tar-with-owners-and-links": lambda ctx: (ctx / "owners.tar").write_bytes(_owners_tar()),
}

# Dockerfiles both builders refuse: (Dockerfile, context files, a part of both messages).
ERRORS: dict[str, tuple[str, dict[str, str], str]] = {
    "error-unknown-instruction": (
        "FROM busybox\nFROBNICATE x\n",
        {},
        "unknown instruction: FROBNICATE",
    ),
    "error-copy-outside-context": (
        "FROM busybox\nCOPY ../outside /x\n",
        {},
        "outside the build context",
    ),
    "error-copy-missing-source": (
        "FROM busybox\nCOPY missing /x\n",
        {},
        "file not found in build context or excluded by .dockerignore",
    ),
    "error-run-exit-code": (
        "FROM busybox\nRUN exit 7\n",
        {},
        "returned a non-zero code: 7",
    ),
    "error-no-from": ("RUN true\n", {}, "no build stage in current context"),
    "error-env-without-value": ("FROM busybox\nENV\n", {}, "ENV requires at least one argument"),
    "error-multiple-sources-need-dir": (
        "FROM busybox\nCOPY a b /notadir\n",
        {"a": "a\n", "b": "b\n"},
        "the destination must be a directory and end with a /",
    ),
    "error-bad-healthcheck-duration": (
        "FROM busybox\nHEALTHCHECK --interval=100us CMD true\n",
        {},
        "Interval",
    ),
    "error-unknown-flag": (
        "FROM busybox\nCOPY --frob=1 a /a\n",
        {"a": "a\n"},
        "Unknown flag: frob",
    ),
    "error-copy-dir-onto-a-file": (
        "FROM busybox\nRUN echo old > /b\nCOPY d /b/\n",
        {"d/y": "y\n"},
        "not a directory",
    ),
    "error-wildcard-with-trailing-slash": (
        "FROM busybox\nCOPY dir*/ /dirs/\n",
        {"dir1/x": "x\n"},
        "COPY failed: no source files were specified",
    ),
    "error-label-without-value": (
        "FROM busybox\nLABEL h\n",
        {},
        "LABEL must have two arguments",
    ),
    "error-expose-bad-port": ("FROM busybox\nEXPOSE 80/xyz\n", {}, "Invalid proto"),
}

# dockerd's message names a path of its own store (`mkdir /var/lib/docker/overlay2/…/merged/b:
# not a directory`); dockyard's names the Dockerfile's path: only the words are compared.
HOST_PATH_IN_MESSAGE = {"error-copy-dir-onto-a-file"}
