"""List, resolve and load the container images of the image list (``manifests/images.yaml``).

- ``python -m conformance.images list``: print every reference (``name:tag@digest`` when the digest is
  known), one per line, e.g. to mirror them into a private registry;
- ``python -m conformance.images resolve [--write]``: ask each registry (Docker Registry HTTP API v2) for
  the digest of every tag and record it in the list;
- ``python -m conformance.images load --cluster-name N``: ``docker pull`` what is missing and
  ``kind load docker-image`` it into the cluster, for runs without registry access.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from conformance.core import progress, versions
from conformance.images.image_list import IMAGE_LIST_PATH, ImageList, ImageListError, default_variables, load, write
from conformance.images.kind_loading import Commands, ImageLoadError, check_cluster, find_tools, load_into_kind
from conformance.images.registry import INDEX_MEDIA_TYPES, RegistryClient, ResolveStatus, resolve


def _endpoint(text: str) -> tuple[str, str]:
    registry, sep, url = text.partition("=")
    if not sep or not registry or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected REGISTRY=URL, e.g. docker.io=https://mirror.example")
    return registry, url


def _istio_version(text: str) -> str:
    try:
        versions.istio_release(text.strip().removeprefix("v"))
        return default_variables(text)["ISTIO_VERSION"]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: pytest's exit code for a usage error, which the harness's own CLI shares: a bad option is named, exit 4.
USAGE_ERROR = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m conformance.images", description=__doc__.split("\n")[0])
    common = _Parser(add_help=False)
    common.add_argument("--images-file", type=Path, default=IMAGE_LIST_PATH, help="the image list to use")
    common.add_argument(
        "--istio-version",
        type=_istio_version,
        default=versions.DEFAULT_ISTIO_VERSION,
        help="Istio release whose images to use (default: %(default)s)",
    )
    common.add_argument(
        "--group", action="append", dest="groups", help="only this group of the list (repeatable; default: all)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", parents=[common], help="print every image reference, one per line")

    resolve_cmd = commands.add_parser("resolve", parents=[common], help="ask the registries for digests")
    resolve_cmd.add_argument("--write", action="store_true", help="record new digests in the image list")
    resolve_cmd.add_argument(
        "--endpoint",
        type=_endpoint,
        action="append",
        default=[],
        metavar="REGISTRY=URL",
        help="query URL instead of the registry's own API host (repeatable)",
    )
    resolve_cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")

    load_cmd = commands.add_parser("load", parents=[common], help="docker pull + kind load every image")
    load_cmd.add_argument("--cluster-name", required=True, help="kind cluster to load the images into")
    load_cmd.add_argument("--kind-bin", help="kind executable (default: kind on PATH)")
    load_cmd.add_argument("--timeout", type=float, default=900.0, help="seconds per docker/kind command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        image_list = load(args.images_file)
        unknown_groups = set(args.groups or []) - set(image_list.groups())
        if unknown_groups:
            raise ImageListError(f"unknown group(s) {sorted(unknown_groups)}; groups: {image_list.groups()}")
        variables = default_variables(args.istio_version)
        if args.command == "list":
            for image in image_list.images(variables, args.groups):
                print(image.reference)
            return 0
        if args.command == "resolve":
            return _resolve_command(args, image_list, variables)
        progress.attach_terminal_handler()
        docker, kind = find_tools(args.kind_bin)
        commands = Commands(docker, kind, args.timeout)
        # Before anything is pulled: kind answers, and the cluster to load into exists.
        check_cluster(commands, args.cluster_name)
        results = load_into_kind(image_list.images(variables, args.groups), args.cluster_name, commands)
        loaded = sum(result.loaded_into_kind for result in results)
        print(f"{len(results)} image(s) present in Docker, {loaded} loaded into kind cluster {args.cluster_name}")
        return 0
    except (ImageListError, ImageLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _resolve_command(args: argparse.Namespace, image_list: ImageList, variables: Mapping[str, str]) -> int:
    client = RegistryClient(dict(args.endpoint), timeout=args.timeout)
    results, updated = resolve(image_list, client, variables, args.groups)
    for result in results:
        kind = (
            ""
            if result.status is ResolveStatus.FAILED or result.media_type in INDEX_MEDIA_TYPES
            else (f" (single-platform manifest {result.media_type or 'of unknown type'})")
        )
        detail = result.error if result.status is ResolveStatus.FAILED else f"{result.digest}{kind}"
        if result.status in (ResolveStatus.MOVED, ResolveStatus.CONFLICT):
            detail += f" (recorded: {result.image.digest}, source: {result.image.source})"
        print(f"{result.image.name}\t{result.status.value}\t{detail}")
    if args.write and updated != image_list:
        write(updated, args.images_file)
        print(f"recorded new digests in {args.images_file}")
    failed = any(r.status in (ResolveStatus.FAILED, ResolveStatus.CONFLICT) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
