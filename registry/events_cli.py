"""``berth events``: the event log's consumers and the cluster's nodes, for operators.

    berth events consumers            every cursor, how many events it is behind
    berth events drop-consumer NAME   forget a consumer for good (a webhook endpoint removed
                                      from the config holds back event pruning until then)
    berth events nodes                the running nodes and their last heartbeat

Opens the configured metadata store (SQLite or PostgreSQL), so it works while servers run.
Exit status 0; 1 when ``drop-consumer`` names no consumer; 2 on a configuration error
(raised to ``berth``'s main).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Awaitable, Callable


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _with_store(args: argparse.Namespace, use: Callable[[Any], Awaitable[int]]) -> int:
    from registry.config import load_config
    from registry.datadir import ensure_data_dir
    from registry.metadata.factory import open_store

    config = load_config(args.config, overrides={"data_dir": args.data})
    ensure_data_dir(config.data_dir)

    async def run() -> int:
        store = open_store(config)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _cmd_consumers(args: argparse.Namespace) -> int:
    async def show(store: Any) -> int:
        positions = await store.consumer_positions()
        last = await store.last_event_id()
        rows = [{"name": name, "position": pos, "behind": max(last - pos, 0)}
                for name, pos in positions.items()]
        if args.json:
            json.dump({"last_event": last, "consumers": rows}, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        width = max([len("CONSUMER"), *(len(r["name"]) for r in rows)])
        print(f"{'CONSUMER'.ljust(width)}  POSITION  BEHIND")
        for r in rows:
            print(f"{r['name'].ljust(width)}  {r['position']:>8}  {r['behind']:>6}")
        return 0

    return _with_store(args, show)


def _cmd_drop(args: argparse.Namespace) -> int:
    async def drop(store: Any) -> int:
        if await store.drop_consumer(args.name):
            print(f"dropped event consumer {args.name}")
            return 0
        print(f"berth: no event consumer {args.name!r}", file=sys.stderr)
        return 1

    return _with_store(args, drop)


def _cmd_nodes(args: argparse.Namespace) -> int:
    async def show(store: Any) -> int:
        nodes = await store.list_nodes()
        if args.json:
            json.dump({"nodes": [{"id": n.id, "hostname": n.hostname, "pid": n.pid,
                                  "started_at": n.started_at, "heartbeat_at": n.heartbeat_at}
                                 for n in nodes]}, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        print("NODE                                  HOST  PID  STARTED  HEARTBEAT")
        for n in nodes:
            print(f"{n.id}  {n.hostname}  {n.pid}  {_when(n.started_at)}  "
                  f"{_when(n.heartbeat_at)}")
        return 0

    return _with_store(args, show)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``events`` and its commands to ``berth``'s sub-parsers."""
    parser = subparsers.add_parser("events", help="event consumers and nodes",
                                   description="Inspect the event log's consumers and nodes.")
    commands = parser.add_subparsers(dest="events_command", metavar="COMMAND", required=True)

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file")
        sub.add_argument("--data", metavar="DIR", help="data directory (default ./berth-data)")
        sub.set_defaults(func=func)
        return sub

    command("consumers", "every event consumer's cursor and how far behind it is",
            _cmd_consumers).add_argument("--json", action="store_true", help="JSON output")
    command("drop-consumer", "forget an event consumer for good (its events may be pruned)",
            _cmd_drop).add_argument("name", metavar="NAME")
    command("nodes", "running nodes and their last heartbeat",
            _cmd_nodes).add_argument("--json", action="store_true", help="JSON output")
    return parser
