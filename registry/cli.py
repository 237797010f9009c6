"""The ``berth`` command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from policies.cli import register as register_policy
from registry.auth.iam_cli import register as register_iam
from registry.config import Config, ConfigError, load_config
from scanner.cli import register as register_scanner
from scanner.webhooks_cli import register as register_webhooks


def _config(args: argparse.Namespace) -> Config:
    overrides = {"data_dir": getattr(args, "data", None)}
    if getattr(args, "listen", None):
        overrides["server.listen"] = args.listen
    if getattr(args, "workers", None) is not None:
        overrides["server.workers"] = args.workers
    return load_config(args.config, overrides=overrides)


def _cmd_serve(args: argparse.Namespace) -> int:
    from registry.serve import serve

    return serve(_config(args))


def _cmd_gc(args: argparse.Namespace) -> int:
    from registry.gc import collect_garbage
    from registry.logs import setup_logging
    from registry.metadata.sqlite import SQLiteMetadataStore
    from registry.storage.filesystem import FilesystemBlobStore

    config = _config(args)
    setup_logging("warning")
    metadata = SQLiteMetadataStore(config.metadata_path)
    blobs = FilesystemBlobStore(config.data_dir)
    grace = config.gc.grace_seconds if args.grace is None else args.grace
    report = collect_garbage(metadata, blobs, grace_seconds=grace,
                             upload_max_age_seconds=config.uploads.stale_after_seconds,
                             dry_run=args.dry_run)
    print(json.dumps({**report.summary(), "manifests": report.manifests,
                      "blobs": report.blobs}, indent=2))
    return 0


def _cmd_fsck(args: argparse.Namespace) -> int:
    from registry.integrity.fsck import main as fsck
    from registry.logs import setup_logging

    config = _config(args)
    setup_logging("warning")
    return fsck(config, repair=args.repair, as_json=args.json)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data", metavar="DIR",
                        help="data directory (default ./berth-data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berth", description="Berth container registry")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the registry server")
    _common(serve)
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="address to listen on (default 127.0.0.1:5000)")
    serve.add_argument("--workers", metavar="N", type=int,
                       help="worker processes sharing the port (default 1)")
    serve.set_defaults(func=_cmd_serve)
    gc = sub.add_parser("gc", help="collect unreferenced blobs and untagged manifests")
    _common(gc)
    gc.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    gc.add_argument("--grace", type=float, metavar="SECONDS",
                    help="override the grace window (default from config, 3600)")
    gc.set_defaults(func=_cmd_gc)
    fsck = sub.add_parser("fsck", help="re-hash every blob and check every tag's closure",
                          description="Re-hash every blob under blobs/, check that every "
                          "tag's closure is present, report corrupt and missing blobs with "
                          "the repositories and tags they affect. Safe while the server "
                          "runs. Exit status 0: clean; 1: problems found; 2: no data.")
    _common(fsck)
    fsck.add_argument("--repair", action="store_true",
                      help="quarantine corrupt blobs and stop claiming them, so that "
                      "clients push them again")
    fsck.add_argument("--json", action="store_true", help="print the report as JSON")
    fsck.set_defaults(func=_cmd_fsck)
    register_policy(sub)
    register_iam(sub)
    register_scanner(sub)
    register_webhooks(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
