"""An instrumented ``Database``: records every transaction it runs, with the rows each write
transaction changed, so tests can pin that work is split into bounded transactions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from registry.metadata.database import Conn, Database, Query


class CountingConn(Conn):
    def __init__(self, inner: Conn, changed: list[int]) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self._changed = changed

    def execute(self, q: Query, params: Mapping[str, Any] | None = None) -> Any:
        result = self.inner.execute(q, params)
        if q.statement(self.dialect).is_dml:
            # Single-row statements run through scalar/one (INSERT ... RETURNING).
            self._changed[0] += 1
        return result

    def run(self, q: Query, **params: Any) -> int:
        count = self.inner.run(q, **params)
        self._changed[0] += max(count, 0)
        return count

    def many(self, q: Query, rows: Sequence[Mapping[str, Any]]) -> None:
        self.inner.many(q, rows)
        self._changed[0] += len(rows)

    def notify(self, channel: str) -> None:
        self.inner.notify(channel)


@dataclass
class CountingDatabase(Database):
    """Wraps ``inner``; ``log`` holds ("read", 0) and ("write", rows changed) in order.
    ``after_write(rows)`` runs after each write transaction committed."""

    inner: Database
    log: list[tuple[str, int]] = field(default_factory=list)
    after_write: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self.dialect = self.inner.dialect
        self._lock = threading.Lock()

    def _record(self, kind: str, rows: int) -> None:
        with self._lock:
            self.log.append((kind, rows))

    @property
    def writes(self) -> list[int]:
        return [rows for kind, rows in self.log if kind == "write"]

    def read_sync(self, fn):
        self._record("read", 0)
        return self.inner.read_sync(fn)

    async def read(self, fn):
        self._record("read", 0)
        return await self.inner.read(fn)

    def _counted(self, fn, changed: list[int]):
        return lambda conn: fn(CountingConn(conn, changed))

    def write_sync(self, fn):
        changed = [0]
        result = self.inner.write_sync(self._counted(fn, changed))
        self._record("write", changed[0])
        if self.after_write is not None:
            self.after_write(changed[0])
        return result

    async def write(self, fn):
        changed = [0]
        result = await self.inner.write(self._counted(fn, changed))
        self._record("write", changed[0])
        return result

    def subscribe(self, channel, callback):
        self.inner.subscribe(channel, callback)

    async def wait(self, channel: str, timeout: float) -> bool:
        return await self.inner.wait(channel, timeout)

    def engine(self):
        return self.inner.engine()

    async def close(self) -> None:
        """The inner database belongs to the fixture that opened it."""

    def close_sync(self) -> None:
        """As ``close``."""
