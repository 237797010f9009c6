"""The ``berth`` command.

Start-up stays cheap: only the command being run is imported. ``berth --help`` lists the
commands of ``_PLUGGED`` without importing them; ``serve`` and ``gc`` import the server inside
their handlers, and the plugged modules keep heavy imports (aiohttp, cryptography, the
stores) inside their handlers too, so their ``register`` is argparse definitions only.

Every command runs with umask 077 (``registry.datadir``): whatever it writes in the data
directory is the owner's alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from registry.config import Config, ConfigError, load_config
from registry.datadir import ensure_data_dir, private_umask

# Commands whose parsers live in other modules: name -> (module with ``register(subparsers)``,
# the one-line help ``berth --help`` shows without importing the module).
_PLUGGED = {
    "policy": ("registry.auth.simulate",
               "validate policy documents and simulate authorisation decisions"),
    "iam": ("registry.auth.iam_cli", "manage users, access keys and identity policies"),
    "scanner": ("scanner.cli", "vulnerability scanning"),
    "webhooks": ("scanner.webhooks_cli", "inspect webhook deliveries"),
    "db": ("registry.metadata.cli", "inspect and upgrade the metadata database schema"),
    "events": ("registry.events_cli", "event consumers and nodes"),
    "keys": ("registry.auth.keys_cli",
             "master keys: generate one, show its id, re-seal stored secrets"),
}


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
    from registry.metadata.factory import open_store
    from registry.storage.factory import open_blob_store

    config = _config(args)
    setup_logging("warning")
    ensure_data_dir(config.data_dir)
    metadata = open_store(config)
    blobs = open_blob_store(config, metadata)
    grace = config.gc.grace_seconds if args.grace is None else args.grace
    try:
        report = collect_garbage(metadata, blobs, grace_seconds=grace,
                                 upload_max_age_seconds=config.uploads.stale_after_seconds,
                                 dry_run=args.dry_run)
    finally:
        metadata.db.close_sync()
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


def _command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``berth`` parser. Given ``argv``, only the command it names is fully registered
    (the others are one-line stubs for ``--help``); without, every command is."""
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
    wanted = None if argv is None else _command_of(argv)
    for name, (module, help) in _PLUGGED.items():
        if argv is None or name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        with private_umask():
            return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
