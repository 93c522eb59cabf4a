"""Registry commands: pull, push, login, logout (docker/cli's image pull/push, registry).

Credentials are read and written as the docker CLI does (cli/registry_auth.py) and sent to
the daemon as X-Registry-Auth; progress is one bar per layer on a terminal, Docker's lines
elsewhere (cli/pull_progress.py).
"""

from __future__ import annotations

import argparse
import sys

from dockyard.cli.client import APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.refs import normalize_image_ref
from dockyard.cli.streams import StreamError, iter_messages, response_chunks

TYPE_CHECKING = False  # typing itself costs start-up time; mypy honours this name

if TYPE_CHECKING:
    from typing import Any


def auth_headers(image: str) -> dict[str, str]:
    from dockyard.cli.registry_auth import (
        CredentialsError,
        registry_auth_header,
        registry_of_image,
    )

    try:
        return {"X-Registry-Auth": registry_auth_header(registry_of_image(image))}
    except CredentialsError as exc:
        raise CommandError(str(exc)) from None


def _stream(ctx: Context, resp: Any, quiet: bool = False) -> dict[str, Any]:
    from dockyard.cli.pull_progress import show

    try:
        messages = iter_messages(response_chunks(resp))
        if quiet:
            aux: dict[str, Any] = {}
            for msg in messages:
                if isinstance(msg.get("aux"), dict):
                    aux = msg["aux"]
            return aux
        return show(messages, ctx.out)
    except StreamError as exc:
        raise CommandError(str(exc)) from None
    finally:
        resp.close()


def pull(ctx: Context, image: str, *, platform: str = "", quiet: bool = False) -> None:
    """`POST /images/create?fromImage=&tag=` with credentials and progress (also for `run`)."""
    repo, tag = normalize_image_ref(image)
    query = {"fromImage": repo, "tag": tag}
    if platform:
        query["platform"] = platform
    resp = ctx.client.request("POST", "/images/create", query, headers=auth_headers(repo))
    _stream(ctx, resp, quiet)


def cmd_pull(ctx: Context, args: argparse.Namespace) -> int:
    image = args.image
    last = image.rsplit("/", 1)[-1]
    name_only = "@" not in image and ":" not in last
    if args.all_tags:
        if not name_only:
            raise CommandError("tag can't be used with --all-tags/-a")
        # an empty tag asks the daemon for every tag of the repository (ImageCreate)
        query = {"fromImage": image, "tag": ""}
        if args.platform:
            query["platform"] = args.platform
        resp = ctx.client.request("POST", "/images/create", query, headers=auth_headers(image))
        _stream(ctx, resp, args.quiet)
        from dockyard.cli.refs import normalized_name

        ctx.write(normalized_name(image) + "\n")
        return 0
    if name_only and not args.quiet:
        ctx.write("Using default tag: latest\n")
    pull(ctx, image, platform=args.platform or "", quiet=args.quiet)
    from dockyard.image.reference import parse_reference

    try:
        ctx.write(f"{parse_reference(image)}\n")
    except Exception:  # the daemon accepted it; print it as given
        ctx.write(f"{image}\n")
    return 0


def cmd_push(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.flags import require_platform_api

    require_platform_api(ctx, "push", args.platform)
    repo, tag = normalize_image_ref(args.image)
    name_only = "@" not in args.image and ":" not in args.image.rsplit("/", 1)[-1]
    if args.all_tags and not name_only:
        raise CommandError("tag can't be used with --all-tags/-a")
    if not args.all_tags and name_only:
        ctx.write(f"Using default tag: {tag}\n")  # push.go: a bare name means :latest
    # no tag: the daemon pushes every tag of the repository (--all-tags)
    query = None if args.all_tags else {"tag": tag}
    resp = ctx.client.request(
        "POST", f"/images/{quote_name(repo)}/push", query, headers=auth_headers(repo)
    )
    _stream(ctx, resp, args.quiet)
    if args.quiet:
        from dockyard.cli.refs import normalized_name

        ctx.write(normalized_name(args.image) + "\n")  # push.go prints the pushed name
    return 0


def cmd_login(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.registry_auth import (
        CredentialsError,
        get_credentials,
        server_key,
        store_credentials,
    )

    server = server_key(args.server or "")
    username, password = args.username or "", args.password or ""
    if args.password_stdin:
        if args.password:
            raise CommandError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CommandError("Must provide --username with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
    elif password:
        ctx.warn("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not username and not password:
        # docker login with saved credentials tries them first.
        try:
            saved = get_credentials(server)
        except CredentialsError:
            saved = {}
        if saved.get("username") and saved.get("password"):
            username, password = saved["username"], saved["password"]
    if not username:
        username = input("Username: ").strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CommandError("Error: Cannot perform an interactive login from a non TTY device")
    body = {"username": username, "password": password, "serveraddress": server}
    try:
        doc = ctx.client.post_json("/auth", None, body) or {}
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}") from None
    token = str(doc.get("IdentityToken") or "")
    try:
        where = store_credentials(server, username, password if not token else "", token)
    except CredentialsError as exc:
        raise CommandError(f"Error saving credentials: {exc}") from None
    if where.endswith("config.json"):
        # docker CLI 28's wording (cli/command/registry/login.go)
        ctx.warn(
            f"\nWARNING! Your credentials are stored unencrypted in '{where}'.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/go/credential-store/\n\n"
        )
    ctx.write(f"{doc.get('Status') or 'Login Succeeded'}\n")
    return 0


def cmd_logout(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.registry_auth import CredentialsError, erase_credentials, server_key

    server = server_key(args.server or "")
    # docker CLI 28 says it removes them whether or not any were stored (measured)
    ctx.write(f"Removing login credentials for {server}\n")
    try:
        erase_credentials(server)
    except CredentialsError as exc:
        raise CommandError(str(exc)) from None
    return 0
