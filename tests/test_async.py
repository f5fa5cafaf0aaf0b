"""AsyncSession: the session driven from asyncio, every call on one worker thread that owns the connection.

Each test runs its coroutine with ``asyncio.run``.  Commits are read back from a second
connection to the same file.  Where a test needs a call to be queued, or running, when its task is
cancelled, a call of its own holds the worker on a ``threading.Event`` that the test sets: which
step happens first is decided by the events, never by a clock.
"""

import asyncio
import logging
import sqlite3
import threading

import pytest

import uow
from uow import AsyncSession, Collection, Column, Entity, Reference, errors


class AsyncBase(Entity, abstract=True):
    """This module's own registry."""


class Customer(AsyncBase, table="async_customers"):
    id: int = Column(primary_key=True)
    name: str
    purchases = Collection("Purchase", "customer", cascade="all, delete-orphan")


class Purchase(AsyncBase, table="async_purchases"):
    id: int = Column(primary_key=True)
    customer_id: int = Column(references=Customer)
    customer = Reference("customer_id")
    total: int = 0


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "async.db")
    connection = uow.connect(path)
    uow.create_all(connection, [Customer, Purchase])
    connection.execute("INSERT INTO async_customers (id, name) VALUES (1, 'ann'), (2, 'bob')")
    connection.execute("INSERT INTO async_purchases (id, customer_id, total) VALUES (10, 1, 30), (11, 1, 40)")
    connection.close()
    return path


@pytest.fixture
def other(path):
    connection = sqlite3.connect(path, isolation_level=None)
    yield connection
    connection.close()


def names(connection):
    return [row[0] for row in connection.execute("SELECT name FROM async_customers ORDER BY id")]


def memory_database():
    """A function that opens a fresh in-memory database on the worker, with the tables and two rows."""
    connection = uow.connect(":memory:")
    uow.create_all(connection, [Customer, Purchase])
    connection.execute("INSERT INTO async_customers (id, name) VALUES (1, 'ann'), (2, 'bob')")
    connection.execute("INSERT INTO async_purchases (id, customer_id, total) VALUES (10, 1, 30), (11, 1, 40)")
    return connection


@pytest.fixture(params=["file", "memory"])
def database(request, path):
    return path if request.param == "file" else memory_database


class Gate:
    """Holds the worker inside a call until the test opens it: ``await session.run_sync(gate.hold)``."""

    def __init__(self):
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self, session):
        self.entered.set()
        self.opened.wait()

    async def until_entered(self):
        while not self.entered.is_set():
            await asyncio.sleep(0)


def test_get_change_commit_and_every_call_runs_on_the_one_worker(path, other):
    threads = []

    async def main():
        async with AsyncSession(path) as session:
            await session.run_sync(uow.listen, "before_flush", lambda s, **info: threads.append(threading.get_ident()))
            ann = await session.get(Customer, 1)
            ann.name = "Ann"                      # memory only, on the loop's thread
            assert session.dirty == {ann}
            session.add(Customer(id=3, name="cy"))
            threads.append(await session.run_sync(lambda s: threading.get_ident()))
            await session.flush()
            assert names(other) == ["ann", "bob"]  # flushed, not committed
            await session.commit()
            assert names(other) == ["Ann", "bob", "cy"]
            threads.append(await session.run_sync(lambda s: threading.get_ident()))
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(set(threads)) == 1 and threads[0] != loop_thread


def test_get_with_for_update_takes_the_write_lock_on_the_worker_and_populate_existing_rereads(path, other):
    other.execute("PRAGMA busy_timeout = 0")

    async def main():
        async with AsyncSession(path, expire_on_commit=False) as session:
            ann = await session.get(Customer, 1)
            await session.commit()
            other.execute("UPDATE async_customers SET name = 'Ann' WHERE id = 1")
            assert await session.get(Customer, 1) is ann and ann.name == "ann"  # a hit: no SQL
            assert await session.get(Customer, 1, with_for_update=True) is ann
            assert ann.name == "Ann" and not session.is_modified(ann)  # read again under the lock
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE async_customers SET name = 'x' WHERE id = 2")
            await session.commit()  # the lock ends with the transaction
            other.execute("UPDATE async_customers SET name = 'ANN' WHERE id = 1")
            assert await session.get_one(Customer, 1, populate_existing=True) is ann and ann.name == "ANN"
            with pytest.raises(errors.ArgumentError, match="with_for_update"):
                await session.get(Customer, 1, with_for_update="nowait")
            assert not session.is_modified(ann, include_collections=True)

    asyncio.run(main())
    assert names(other) == ["ANN", "bob"]


def test_the_block_rolls_back_on_an_error_and_closes(database):
    async def main():
        session = AsyncSession(database)
        with pytest.raises(KeyError):
            async with session:
                session.add(Customer(id=3, name="cy"))
                await session.flush()
                raise KeyError("no")
        with pytest.raises(errors.SessionClosedError, match="AsyncSession was closed"):
            await session.get(Customer, 1)
        return session

    asyncio.run(main())


def test_the_event_loop_keeps_running_while_a_call_waits(path):
    async def main():
        async with AsyncSession(path) as session:
            gate = Gate()
            held = asyncio.create_task(session.run_sync(gate.hold))
            await gate.until_entered()
            ticks = 0
            for _ in range(3):  # the loop runs other work while the worker is held
                await asyncio.sleep(0)
                ticks += 1
            gate.opened.set()  # opened from the loop: a blocked loop would never get here
            await held
            assert ticks == 3

    asyncio.run(main())


def test_an_unloaded_collection_is_refused_on_the_loop_and_load_related_loads_it(database):
    async def main():
        async with AsyncSession(database) as session:
            ann = await session.get(Customer, 1)
            with pytest.raises(errors.LazyLoadError) as refused:
                ann.purchases
            message = str(refused.value)
            assert "Customer(id=1).purchases is not loaded" in message
            assert "load_related([obj], 'purchases')" in message and "run_sync" in message
            await session.load_related([ann], "purchases")
            assert sorted(p.total for p in ann.purchases) == [30, 40]
            bob = (await session.filter(Customer, name="bob", load=["purchases"]))[0]
            assert bob.purchases == []
            assert await session.run_sync(lambda s: len(s.get(Customer, 1).purchases)) == 2

    asyncio.run(main())


def test_a_reference_is_read_from_the_identity_map_or_refused(database):
    async def main():
        async with AsyncSession(database) as session:
            purchase = await session.get(Purchase, 10)
            with pytest.raises(errors.LazyLoadError, match=r"Purchase\(id=10\)\.customer is not loaded"):
                purchase.customer
            ann = await session.get(Customer, 1)
            with uow.capture_sql() as statements:
                assert purchase.customer is ann  # held by the identity map: no SQL, no refusal
            assert statements == []
            other_purchase = await session.get(Purchase, 11)
            await session.load_related([other_purchase], "customer")
            assert other_purchase.customer is ann

    asyncio.run(main())


def test_an_expired_column_is_refused_on_the_loop_and_refresh_loads_it(database):
    async def main():
        async with AsyncSession(database, expire_on_commit=True) as session:
            ann = await session.get(Customer, 1)
            ann.name = "Ann"
            await session.commit()
            with pytest.raises(errors.LazyLoadError, match=r"Customer\(id=1\) has expired.*await session.refresh"):
                ann.name
            await session.refresh(ann)
            assert ann.name == "Ann"

    asyncio.run(main())


def test_using_the_session_or_its_objects_while_a_call_runs_is_refused(path):
    async def main():
        async with AsyncSession(path) as session:
            ann = await session.get(Customer, 1)
            gate = Gate()
            held = asyncio.create_task(session.run_sync(gate.hold))
            await gate.until_entered()
            with pytest.raises(errors.WrongThreadError, match="running a call on its worker"):
                ann.name = "raced"
            with pytest.raises(errors.WrongThreadError, match="running a call on its worker"):
                session.add(Customer(id=3, name="cy"))
            gate.opened.set()
            await held
            ann.name = "after"  # the worker is idle again: the objects are the loop's
            assert session.dirty == {ann}

    asyncio.run(main())


def test_a_call_cancelled_while_queued_never_runs(path, other):
    async def main():
        async with AsyncSession(path) as session:
            session.add(Customer(id=3, name="cy"))
            gate = Gate()
            held = asyncio.create_task(session.run_sync(gate.hold))
            await gate.until_entered()
            commit = asyncio.create_task(session.commit())
            await asyncio.sleep(0)  # the commit is queued behind the held call
            commit.cancel()
            with pytest.raises(asyncio.CancelledError):
                await commit
            gate.opened.set()
            await held
            assert names(other) == ["ann", "bob"]  # never committed, never even flushed
            assert [c.name for c in session.new] == ["cy"]
            await session.rollback()

    asyncio.run(main())


def test_a_call_cancelled_while_running_finishes_before_the_cancellation_arrives(path, other):
    async def main():
        async with AsyncSession(path) as session:
            gate = Gate()
            await session.run_sync(uow.listen, "before_commit", lambda s, **info: gate.hold(s))
            cy = Customer(id=3, name="cy")
            session.add(cy)
            commit = asyncio.create_task(session.commit())
            await gate.until_entered()  # the commit is running on the worker
            commit.cancel()
            for _ in range(3):
                await asyncio.sleep(0)
            assert not commit.done()  # the task waits for the commit to end
            gate.opened.set()
            with pytest.raises(asyncio.CancelledError):
                await commit
            # The commit ran to its end: committed, and the session says so.
            assert names(other) == ["ann", "bob", "cy"]
            assert uow.state_of(cy) is uow.ObjectState.PERSISTENT and session.new == frozenset()
            assert not session.in_transaction()

    asyncio.run(main())


def test_a_task_cancelled_inside_the_block_leaves_nothing_uncommitted(path, other):
    async def work(session, ready):
        async with session:
            session.add(Customer(id=3, name="cy"))
            await session.flush()
            ready.set()
            await asyncio.Event().wait()  # cancelled here

    async def main():
        session = AsyncSession(path)
        ready = asyncio.Event()
        task = asyncio.create_task(work(session, ready))
        await ready.wait()
        assert other.execute("SELECT count(*) FROM async_customers").fetchone() == (2,)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return session

    session = asyncio.run(main())
    assert names(other) == ["ann", "bob"]  # rolled back, then closed
    assert repr(session) == "<AsyncSession closed>"


def test_a_savepoint_block_rolls_back_objects_and_database(path, other):
    async def main():
        async with AsyncSession(path) as session:
            ann = await session.get(Customer, 1)
            with pytest.raises(RuntimeError):
                async with session.savepoint("optional_work") as nested:
                    assert nested.name == "optional_work" and nested.is_active
                    ann.name = "renamed"
                    session.add(Customer(id=3, name="trial"))
                    await session.flush()
                    raise RuntimeError("discard")
            assert ann.name == "ann" and not nested.is_active
            async with session.begin_nested():
                session.add(Customer(id=4, name="kept"))
        assert names(other) == ["ann", "bob", "kept"]

    asyncio.run(main())


def test_a_cancellation_inside_a_savepoint_block_still_rolls_it_back(path, other):
    async def work(session, ready):
        async with session.begin_nested():
            session.add(Customer(id=3, name="trial"))
            await session.flush()
            ready.set()
            await asyncio.Event().wait()

    async def main():
        async with AsyncSession(path) as session:
            session.add(Customer(id=4, name="kept"))
            ready = asyncio.Event()
            task = asyncio.create_task(work(session, ready))
            await ready.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The savepoint was rolled back (its block ended by the cancellation); the transaction goes on.
            assert session.in_transaction() and not await session.run_sync(lambda s: s.in_nested_transaction())
            assert await session.scalars("SELECT name FROM async_customers ORDER BY id") == ["ann", "bob", "kept"]
        assert names(other) == ["ann", "bob", "kept"]

    asyncio.run(main())


def test_a_transaction_block_commits(database):
    async def main():
        async with AsyncSession(database) as session:
            async with session.begin(read_only=True):
                assert [c.name for c in await session.all(Customer)] == ["ann", "bob"]
            transaction = await session.begin()
            session.add(Customer(id=3, name="cy"))
            await transaction.commit()
            assert not transaction.is_active
            assert await session.scalar("SELECT count(*) FROM async_customers") == 3

    asyncio.run(main())


def test_a_failed_flush_is_reported_and_rollback_recovers(path, other):
    async def main():
        async with AsyncSession(path) as session:
            session.add(Customer(id=1, name="duplicate"))
            with pytest.raises(errors.FlushError):
                await session.flush()
            with pytest.raises(errors.PendingRollbackError):
                await session.get(Customer, 2)
            await session.rollback()
            assert (await session.get_one(Customer, 2)).name == "bob"

    asyncio.run(main())


def test_misuse_is_refused_with_uow_errors(path):
    with pytest.raises(errors.UowError, match="42"):
        AsyncSession(42)  # type: ignore[arg-type]

    async def main():
        session = AsyncSession(path)
        with pytest.raises(errors.UowError, match="not open yet"):
            session.add(Customer(id=3, name="cy"))
        bad = AsyncSession(path, begin_mode="SOMETIMES")
        with pytest.raises(errors.TransactionError, match="SOMETIMES"):
            await bad.open()
        with pytest.raises(errors.UowError, match="could not be opened"):
            await bad.get(Customer, 1)
        await bad.close()
        async with session:
            result = []
            thread = threading.Thread(target=lambda: result.append(_call_from_thread(session)))
            thread.start()
            thread.join()
            assert isinstance(result[0], errors.WrongThreadError) and "event loop" in str(result[0])
        await session.close()  # twice is fine

    asyncio.run(main())


def _call_from_thread(session):
    try:
        session.add(Customer(id=5, name="elsewhere"))
    except errors.UowError as error:
        return error
    return None


def test_the_plain_session_taken_out_of_the_worker_cannot_run_sql_on_the_loop(path):
    async def main():
        async with AsyncSession(path) as session:
            plain = await session.run_sync(lambda s: s)
            with pytest.raises(errors.WrongThreadError, match="run_sync"):
                plain.get(Customer, 2)

    asyncio.run(main())


# -- queries: session.select(...) built without await, its results awaited on the worker ----------

class Threads(logging.Handler):
    """Which thread ran each statement uow logged (``uow.sql``), whatever thread logged it."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = []

    def emit(self, record):
        self.seen.append((record.thread, record.getMessage()))


def test_a_query_is_built_without_await_and_its_results_are_awaited(database):
    async def main():
        async with AsyncSession(database) as session:
            session.add_all([Customer(id=3, name="cy"), Customer(id=4, name="al")])
            query = session.select(Customer).where(Customer.id > 1)  # memory only: no call, no SQL
            assert session.new  # nothing autoflushed yet
            assert [c.name for c in await query.order_by(Customer.name).all()] == ["al", "bob", "cy"]
            assert [c.name for c in await query.order_by(Customer.name.desc()).limit(2).offset(1).all()] == ["bob", "al"]
            assert await query.count() == 3 and await query.limit(1).count() == 1
            assert await query.exists() and not await query.where(Customer.name == "zed").exists()
            assert (await query.first()).name == "bob"
            assert (await query.where(Customer.name == "cy").one()).id == 3
            assert await query.where(Customer.name == "zed").one_or_none() is None
            with pytest.raises(errors.NotFoundError, match=r"one\(\): no row for select\(Customer\)"):
                await query.where(Customer.name == "zed").one()
            with pytest.raises(errors.MultipleResultsError, match="one_or_none"):
                await query.one_or_none()
            assert [c.id async for c in session.select(Customer)] == [1, 2, 3, 4]
            assert repr(query) == "select(Customer).where(Customer.id > 1)"

    asyncio.run(main())


def test_query_rows_go_through_the_identity_map_and_the_query_autoflushes_first(path, other):
    async def main():
        async with AsyncSession(path) as session:
            ann = await session.get(Customer, 1)
            ann.name = "Ann"                       # not flushed: the query's autoflush sends it
            found = await session.select(Customer).where(Customer.name == "Ann").one()
            assert found is ann                    # the object the session holds, not a copy
            assert names(other) == ["ann", "bob"]  # flushed, not committed
            purchases = await session.select(Purchase).order_by(Purchase.total.desc()).all()
            assert [p.total for p in purchases] == [40, 30]
            assert purchases[0].customer is ann    # the reference is read from the identity map
            await session.commit()
        assert names(other) == ["Ann", "bob"]

    asyncio.run(main())


def test_a_query_runs_its_sql_on_the_worker_that_owns_the_connection(path):
    threads = Threads()
    log = logging.getLogger("uow.sql")

    async def main():
        async with AsyncSession(path) as session:
            worker = await session.run_sync(lambda s: threading.get_ident())
            query = session.select(Customer).where(Customer.name.like("a%"))
            log.addHandler(threads)
            level = log.level
            log.setLevel(logging.DEBUG)
            try:
                assert [c.name async for c in query] == ["ann"]
                assert await query.count() == 1
            finally:
                log.removeHandler(threads)
                log.setLevel(level)
            return worker, threading.get_ident()

    worker, loop_thread = asyncio.run(main())
    selects = [thread for thread, message in threads.seen if "SELECT" in message]
    assert len(selects) == 2 and set(selects) == {worker} and worker != loop_thread


def test_iterating_an_async_query_without_async_for_is_refused_with_the_way_to_write_it(path):
    async def main():
        async with AsyncSession(path) as session:
            query = session.select(Customer).where(Customer.id == 1)
            with uow.capture_sql() as statements:
                with pytest.raises(errors.LazyLoadError, match=r"async for obj in query.*await query\.all\(\)"):
                    for _ in query:
                        pass
                with pytest.raises(errors.LazyLoadError, match="plain for"):
                    list(query)
                with pytest.raises(errors.ConditionError, match=r"await query\.all\(\)"):
                    await query
                with pytest.raises(errors.ConditionError, match=r"no truth value.*await query\.exists\(\)"):
                    bool(query)
            assert statements == []
            with pytest.raises(errors.ConditionError):  # the sync query's checks, before any SQL
                session.select(Customer).where(Customer.id > None)
            with pytest.raises(errors.ArgumentError, match="limit"):
                session.select(Customer).limit(-1)

    asyncio.run(main())


def test_building_a_query_while_a_call_is_in_flight_is_refused(path):
    async def main():
        async with AsyncSession(path) as session:
            query = session.select(Customer)
            gate = Gate()
            held = asyncio.create_task(session.run_sync(gate.hold))
            await gate.until_entered()
            with pytest.raises(errors.WrongThreadError, match="where: the AsyncSession is running a call"):
                query.where(Customer.id == 1)
            with pytest.raises(errors.WrongThreadError, match="running a call"):
                session.select(Customer)
            pending = asyncio.create_task(query.count())  # a terminal is queued behind the held call
            gate.opened.set()
            await held
            assert await pending == 2

    asyncio.run(main())


def test_a_query_cancelled_while_queued_never_runs(path, other):
    async def main():
        async with AsyncSession(path) as session:
            cy = Customer(id=3, name="cy")
            session.add(cy)
            everyone = session.select(Customer)  # built while idle: building is refused mid-call
            gate = Gate()
            held = asyncio.create_task(session.run_sync(gate.hold))
            await gate.until_entered()
            query = asyncio.create_task(everyone.all())
            await asyncio.sleep(0)  # queued behind the held call
            query.cancel()
            with pytest.raises(asyncio.CancelledError):
                await query
            gate.opened.set()
            await held
            assert session.new == {cy}  # its autoflush never ran: the query never did
            assert await session.run_sync(lambda s: s.in_transaction()) is False

    asyncio.run(main())


def test_a_query_cancelled_while_running_finishes_and_its_objects_are_held(path, other):
    async def main():
        async with AsyncSession(path) as session:
            gate = Gate()
            await session.run_sync(uow.listen, "before_flush", lambda s, **info: gate.hold(s))
            cy = Customer(id=3, name="cy")
            session.add(cy)
            task = asyncio.create_task(session.select(Customer).where(Customer.id >= 2).all())
            await gate.until_entered()  # the query is running: its autoflush holds the worker
            task.cancel()
            gate.opened.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The query ran to its end: the autoflush wrote cy, and the rows it loaded are held.
            assert session.new == frozenset() and uow.state_of(cy) is uow.ObjectState.PERSISTENT
            with uow.capture_sql() as statements:
                assert (await session.get(Customer, 2)).name == "bob"
            assert statements == []  # bob came from the identity map
            assert names(other) == ["ann", "bob"]  # flushed, not committed

    asyncio.run(main())
