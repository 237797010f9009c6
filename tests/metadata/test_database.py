"""The Database seam itself, on every backend: statements, transactions, errors, types."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.migrate import current, head


@query
def _insert_setting(d):
    return sa.insert(t.registry_settings).values(
        account=sa.bindparam("account"), name=sa.bindparam("name"),
        value=sa.bindparam("value"), updated_at=sa.bindparam("at"))


@query
def _settings(d):
    return (sa.select(t.registry_settings.c.name, t.registry_settings.c.updated_at)
            .where(t.registry_settings.c.account == sa.bindparam("account"))
            .order_by(t.registry_settings.c.name))


@query
def _settings_in(d):
    return (sa.select(t.registry_settings.c.name)
            .where(t.registry_settings.c.name.in_(sa.bindparam("names", expanding=True)))
            .order_by(t.registry_settings.c.name))


async def test_schema_is_at_head(store):
    assert current(store.db.engine()) == head()


async def test_write_then_read_round_trips_timestamps_to_the_microsecond(store):
    at = 1_700_000_000.123456
    await store.db.write(lambda c: c.run(_insert_setting, account="1", name="a", value="v", at=at))
    rows = await store.db.read(lambda c: c.all(_settings, account="1"))
    assert rows == [("a", pytest.approx(at, abs=1e-6))]


async def test_a_failing_transaction_changes_nothing_and_surfaces_its_own_error(store):
    def fail(c):
        c.run(_insert_setting, account="1", name="a", value="v", at=time.time())
        raise LookupError("the caller's own error")

    with pytest.raises(LookupError, match="the caller's own error"):
        await store.db.write(fail)
    assert await store.db.read(lambda c: c.all(_settings, account="1")) == []
    # The connection is usable afterwards.
    await store.db.write(lambda c: c.run(_insert_setting, account="1", name="b", value="v",
                                          at=time.time()))
    assert [r[0] for r in await store.db.read(lambda c: c.all(_settings, account="1"))] == ["b"]


async def test_expanding_parameters(store):
    def fill(c):
        c.many(_insert_setting, [dict(account="1", name=n, value="v", at=1.0)
                                 for n in ("a", "b", "c")])

    await store.db.write(fill)
    rows = await store.db.read(lambda c: c.all(_settings_in, names=["a", "c", "zz"]))
    assert rows == [("a",), ("c",)]


async def test_a_commit_that_notifies_calls_this_processes_subscribers_before_write_returns(
        store):
    from registry.metadata.readcache import CHANGED

    fired = []
    store.db.subscribe(CHANGED, lambda: fired.append(1))

    def change(c):
        c.notify(CHANGED)
        c.run(_insert_setting, account="1", name="n", value="v", at=1.0)

    await store.db.write(change)
    assert fired == [1]

    def fail(c):
        c.notify(CHANGED)
        raise LookupError("rolled back")

    with pytest.raises(LookupError):
        await store.db.write(fail)
    assert fired == [1]  # a transaction that did not commit notifies nobody
