"""``berth webhooks deliveries``: recent webhook deliveries, their attempts and last status.

Reads the metadata database the config names (SQLite or PostgreSQL), so it works while the
server runs. Never prints secrets: the
database holds none, and URLs are stored without userinfo or query. Exit status 0, 1 when
there is no database to read, 2 on a configuration error (raised to ``berth``'s main).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from registry.config import load_config

if TYPE_CHECKING:  # imported when a command runs: registration stays argparse only
    from scanner.webhook_log import Delivery

_COLUMNS = ("CREATED", "DELIVERY", "ENDPOINT", "EVENT", "REPOSITORY", "STATUS", "ATTEMPTS",
            "LAST", "NEXT ATTEMPT")


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


def _last(code: int | None, error: str | None) -> str:
    return str(code) if code is not None else (error or "-")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _row(d: Delivery) -> tuple[str, ...]:
    return (_when(d.created_at), d.id, d.endpoint, d.detail_type, d.repository or "-",
            d.status.value, str(d.attempts), _last(d.last_status_code, d.last_error),
            _when(d.next_attempt_at))


def render_table(deliveries: list[Delivery], out: TextIO) -> None:
    """Aligned columns, then each delivery's attempts indented below it when loaded."""
    rows = [_COLUMNS, *map(_row, deliveries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]

    out.write(line(_COLUMNS) + "\n")
    for d, cells in zip(deliveries, rows[1:]):
        out.write(line(cells) + "\n")
        for a in d.history:
            took = f" {a.duration_ms:.0f}ms" if a.duration_ms is not None else ""
            out.write(f"    attempt {a.number}  {_when(a.started_at)}  "
                      f"{_last(a.status_code, a.error)}{took}\n")


def _json(d: Delivery) -> dict[str, Any]:
    data = dataclasses.asdict(d)
    data["status"] = d.status.value
    return data


def _cmd_deliveries(args: argparse.Namespace) -> int:
    from registry.datadir import ensure_data_dir
    from registry.metadata.factory import open_store
    from scanner.webhook_log import DeliveryLog

    config = load_config(args.config, overrides={"data_dir": args.data})
    if config.metadata.backend == "sqlite" and not config.metadata_path.exists():
        print(f"berth: no metadata database at {config.metadata_path}", file=sys.stderr)
        return 1
    ensure_data_dir(config.data_dir)

    async def read() -> list[Delivery]:
        store = open_store(config)
        try:
            return await DeliveryLog(store).recent(limit=args.limit,
                                                 history=args.attempts or args.json)
        finally:
            await store.close()

    deliveries = asyncio.run(read())
    if args.json:
        json.dump({"deliveries": [_json(d) for d in deliveries]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_table(deliveries, sys.stdout)
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``webhooks`` and its commands to ``berth``'s sub-parsers; each command's ``func``
    takes the parsed namespace and returns the exit status."""
    parser = subparsers.add_parser("webhooks", help="inspect webhook deliveries",
                                   description="Inspect webhook deliveries.")
    commands = parser.add_subparsers(dest="webhooks_command", metavar="COMMAND", required=True)
    deliveries = commands.add_parser(
        "deliveries", help="recent deliveries, newest first, with attempts and last status",
        description="Recent webhook deliveries, newest first.")
    deliveries.add_argument("--config", metavar="FILE", help="TOML configuration file")
    deliveries.add_argument("--data", metavar="DIR", help="data directory (default ./berth-data)")
    deliveries.add_argument("--limit", type=_positive, default=50, metavar="N",
                            help="show at most N deliveries (default 50)")
    deliveries.add_argument("--attempts", action="store_true",
                            help="list every attempt under its delivery")
    deliveries.add_argument("--json", action="store_true",
                            help="JSON output, attempts included")
    deliveries.set_defaults(func=_cmd_deliveries)
    return parser
