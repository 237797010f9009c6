"""``berth keys``: the master keys, for operators.

    berth keys generate PATH    write a new random key file (32 bytes, mode 0600), never
                                over an existing file; prints its id
    berth keys id               the id of the key that seals and signs (``[keys] key_file``,
                                default ``<data>/master.key``)
    berth keys rotate           re-seal every stored secret under that key (see
                                ``registry/auth/rotation.py`` for the whole procedure)

``id`` and ``rotate`` read the configuration (``--config``, ``--data``, ``BERTH_*``) as the
server does and never create a key. ``rotate`` opens the configured metadata store, so it
runs while servers serve, from any node; it draws its progress on a terminal only.

Exit status: 0 done; 1 ``generate`` found the file existing, or ``rotate`` left secrets no
configured key opens (their access key ids are listed); 2 a configuration, key or database
problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

# rotation.DEFAULT_BATCH, not imported here: `berth --help` must not load cryptography.
_DEFAULT_BATCH = 200

def _fail(message: str, status: int = 2) -> int:
    print(f"berth keys: {message}", file=sys.stderr)
    return status


def _keys(args: argparse.Namespace):
    from registry.auth.keys import load_master_keys
    from registry.config import load_config

    config = load_config(args.config, overrides={"data_dir": args.data})
    return config, load_master_keys(config, create=False)


def _cmd_generate(args: argparse.Namespace) -> int:
    from registry.auth.keys import MasterKeyError, generate_key_file, master_key_id

    try:
        key = generate_key_file(args.path)
    except MasterKeyError as exc:
        return _fail(str(exc), 1)
    print(f"wrote a new master key to {args.path} (id {master_key_id(key)}); copy it to every "
          "node, mode 0600, and name it in [keys] key_file")
    return 0


def _cmd_id(args: argparse.Namespace) -> int:
    from registry.auth.keys import MasterKeyError

    try:
        _, keys = _keys(args)
    except MasterKeyError as exc:
        return _fail(str(exc))
    print(keys.current_id)
    return 0


class _Counter:
    """``examined N, re-sealed M`` redrawn in place after each batch, on a terminal only (as
    ``berth fsck`` draws its bar), so pipes and logs get the final report alone."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.drawn = False

    def __call__(self, report) -> None:
        if self.enabled:
            self.drawn = True
            self.stream.write(f"\rre-sealing: {report.examined} examined, "
                              f"{report.resealed} re-sealed\x1b[K")
            self.stream.flush()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _cmd_rotate(args: argparse.Namespace) -> int:
    from registry.auth.keys import MasterKeyError, SecretBox
    from registry.auth.rotation import rotate_secrets
    from registry.datadir import ensure_data_dir
    from registry.metadata.errors import StoreError
    from registry.metadata.factory import open_store
    from registry.metadata.migrate import SchemaBehindError

    try:
        config, keys = _keys(args)
        if config.metadata.backend == "sqlite":
            if not config.metadata_path.is_file():
                return _fail(f"{config.data_dir} holds no metadata database")
            ensure_data_dir(config.data_dir)
        store = open_store(config)
    except (MasterKeyError, SchemaBehindError, StoreError) as exc:
        return _fail(str(exc))
    counter = _Counter(sys.stderr)
    try:
        report = rotate_secrets(store, SecretBox(keys), batch=args.batch, on_batch=counter)
    except StoreError as exc:
        return _fail(f"{exc} (what was re-sealed so far stays so; run again to finish)")
    finally:
        counter.finish()
        store.db.close_sync()
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print(f"master key {report.master_key_id}: {report.examined} access key secrets "
              f"examined, {report.resealed} re-sealed, {report.current} already sealed by it"
              + (f", {report.changed} changed meanwhile" if report.changed else ""))
    if report.unreadable:
        return _fail(f"{len(report.unreadable)} secrets open under no configured key and "
                     "were left as they are (name the key that sealed them in [keys] "
                     "previous_key_files): " + ", ".join(report.unreadable), 1)
    return 0


def _batch(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("between 1 and 10000")
    return value


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``keys`` and its commands to ``berth``'s sub-parsers."""
    parser = subparsers.add_parser(
        "keys", help="master keys: generate one, show its id, re-seal stored secrets",
        description="The master keys that seal stored secrets and sign registry tokens.")
    commands = parser.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    generate = commands.add_parser(
        "generate", help="write a new random key file (mode 0600); never overwrites",
        description="Write 32 random bytes to PATH, mode 0600; refuse if PATH exists.")
    generate.add_argument("path", metavar="PATH")
    generate.set_defaults(func=_cmd_generate)
    for name, help, func in (
            ("id", "print the id of the configured master key", _cmd_id),
            ("rotate", "re-seal every stored secret under the configured master key",
             _cmd_rotate)):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file")
        sub.add_argument("--data", metavar="DIR", help="data directory (default ./berth-data)")
        sub.set_defaults(func=func)
        if name == "rotate":
            sub.add_argument("--batch", type=_batch, default=_DEFAULT_BATCH, metavar="N",
                             help=f"access keys per transaction (default {_DEFAULT_BATCH})")
            sub.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser
