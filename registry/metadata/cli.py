"""``berth db upgrade`` and ``berth db current``: the metadata schema, for operators.

On PostgreSQL ``berth serve`` refuses to start on a database that is behind (unless
``[metadata] upgrade = "auto"``): an operator runs ``berth db upgrade`` once per release, from
any node; concurrent upgrades serialise on a lock, so running it from every node is safe too.
On SQLite the server upgrades its own file at start; the commands work there as well.

Exit status: 0 done / at the newest revision; 1 ``current`` found the database behind;
2 configuration error or unreachable database. The database URL is never printed (it may hold
a password): the host and database name are.
"""

from __future__ import annotations

import argparse
import sys

from registry.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="inspect and upgrade the metadata database schema")
    commands = db.add_subparsers(dest="db_command", required=True)
    for name, help, func in (
            ("upgrade", "apply every missing schema migration", _upgrade),
            ("current", "print the schema revision of the database and of this Berth",
             _current)):
        parser = commands.add_parser(name, help=help)
        parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
        parser.add_argument("--data", metavar="DIR", help="data directory (default ./berth-data)")
        parser.set_defaults(func=func)


def _config(args: argparse.Namespace):
    return load_config(args.config, overrides={"data_dir": args.data})


def _where(config) -> str:
    if config.metadata.backend == "sqlite":
        return f"sqlite {config.metadata_path}"
    import sqlalchemy as sa

    url = sa.make_url(config.metadata.url)
    return f"postgresql {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def _open(config):
    from registry.datadir import ensure_data_dir
    from registry.metadata.factory import open_database

    if config.metadata.backend == "sqlite":
        ensure_data_dir(config.data_dir)
    return open_database(config)


def _reason(exc: Exception) -> str:
    """A driver error in words that carry no connection string."""
    import sqlalchemy as sa

    from registry.metadata.database import map_pg_error, map_sqlite_error

    if isinstance(exc, sa.exc.DBAPIError):
        orig = exc.orig
        import sqlite3

        if isinstance(orig, sqlite3.Error):
            return map_sqlite_error(orig).reason
        return map_pg_error(exc).reason
    return type(exc).__name__


def _upgrade(args: argparse.Namespace) -> int:
    from registry.metadata.errors import StoreError
    from registry.metadata.migrate import upgrade

    config = _config(args)
    database = _open(config)
    try:
        lock = config.metadata_path.with_name("metadata.db.migrate.lock") \
            if database.dialect == "sqlite" else None
        before, after = upgrade(database.engine(), lock_path=lock)
    except (StoreError, OSError) as exc:
        print(f"berth: cannot upgrade {_where(config)}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - driver errors: say which database, not the URL
        print(f"berth: cannot upgrade {_where(config)}: {_reason(exc)}", file=sys.stderr)
        return 2
    finally:
        database.close_sync()
    if before == after:
        print(f"{_where(config)}: already at revision {after}")
    else:
        print(f"{_where(config)}: upgraded from {before or 'an empty database'} to {after}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from registry.metadata.migrate import current, head

    config = _config(args)
    database = _open(config)
    try:
        at = current(database.engine())
    except Exception as exc:  # noqa: BLE001 - see _upgrade
        print(f"berth: cannot read {_where(config)}: {_reason(exc)}", file=sys.stderr)
        return 2
    finally:
        database.close_sync()
    newest = head()
    state = "up to date" if at == newest else "behind: run `berth db upgrade`"
    print(f"{_where(config)}: revision {at or 'none'}; this Berth needs {newest} ({state})")
    return 0 if at == newest else 1
