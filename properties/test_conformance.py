"""The conformance suite: the machine against uow and against each ORM whose adapter ships with
the kit (adapter.SHIPPED), so that every change of the oracle is checked against mature units of
work too: a rule the oracle states wrongly for everyone shows up there as an undeclared
difference (each adapter's module says what it declares).

``UOW_IMPL`` names the implementation in place of uow ("module:factory" or a short name), and
``UOW_CONFORMANCE_ADAPTERS`` (names separated by spaces) chooses the adapters outright: CI runs
the peers on one interpreter only.  Run the suite with ``pytest properties``, or for a report
``python -m properties ADAPTER``; ``HYPOTHESIS_PROFILE`` chooses the settings (see profiles.py).
The programs the "ci" profile draws are fixed by the machine's source, so a program another
profile found is kept below as a plain replay, run against every adapter too.
"""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from .adapter import SHIPPED, AdapterNotFound, load_adapter
from .profiles import PROFILE
from .relations_machine import build_machine


def _adapters():
    chosen = os.environ.get("UOW_CONFORMANCE_ADAPTERS")
    if chosen:
        return chosen.split()
    first = os.environ.get("UOW_IMPL") or "uow"
    return list(dict.fromkeys([first] + [name for name in SHIPPED if name != "uow"]))


@pytest.fixture(scope="module", params=_adapters())
def Machine(request):
    """The machine class for one adapter (a peer whose ORM is not installed is skipped, saying so:
    the test extra installs them all)."""
    try:
        factory = load_adapter(request.param)
    except AdapterNotFound as error:
        if request.param in SHIPPED and request.param != "uow":
            pytest.skip(str(error))
        raise
    return build_machine(factory)


# SQLAlchemy warns of each DELETE that matched no row, which it declares (delete_finding_no_row).
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
def test_conformance(Machine):
    try:
        run_state_machine_as_test(Machine, settings=settings(settings.get_profile(PROFILE)))
    except AssertionError as failure:
        for marker, defect in Machine.adapter_factory().known_defects.items():
            if marker in str(failure):
                pytest.xfail(defect)
        raise


@pytest.fixture
def Replayed(Machine):
    """The machine for the replays below, which call add(), expunge() and the rest of a session
    shaped as SQLAlchemy's is: not one whose objects join it when constructed (Pony)."""
    if Machine.adapter_factory().capabilities.objects_join_on_construction:
        pytest.skip(f"the replays add and expunge objects; {Machine.adapter_factory().name} declares "
                    "objects_join_on_construction (no add(), no expunge())")
    return Machine


@settings(max_examples=1, database=None)
@given(st.none())  # the machine's note() and event() need a running Hypothesis test
def _replay_a_new_row_taking_the_key_of_a_re_added_deleted_object(Machine, _):
    state = Machine()
    try:
        state.setup(shape="parent_child", names=("ant", "bee", "cow", "doe"), generated=(False, True, False, False),
                    unique=(False, False, False, False), seeded=1)
        (loaded,) = state.get(pick=("bee", (1,)))
        state.delete(handle=loaded)
        state.boundary(action="commit")
        state.add(handle=loaded)  # refused; or ("attach") back in the session, persistent, but its row is gone
        state.agrees_with_oracle()
        state.create(name="ann", note_text=None, table="bee", then_add=True, with_code=False)
        state.boundary(action="flush")  # SQLite numbers the new row 1 again
        state.agrees_with_oracle()
        attached = state.caps.attach_without_row == "attach"
        assert ("a new row took the key of a stale object" in state.seen) is attached
        state.boundary(action="rollback")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_new_row_given_the_key_of_a_re_added_deleted_object_detaches_that_object(Replayed):
    """Found by the "dev" profile: the oracle kept both objects persistent under one key.  Where
    the implementation refuses to re-add such an object (attach_without_row), the replay checks the
    refusal and the new row instead."""
    _replay_a_new_row_taking_the_key_of_a_re_added_deleted_object(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_get_of_an_expired_object_whose_row_a_rollback_removed(Machine, _):
    state = Machine()
    try:
        state.setup(shape="single", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, False, False), seeded=0)
        first = state.create(name="ann", note_text=None, table="ant", then_add=True, with_code=False)
        state.boundary(action="flush")  # the transaction's first write: row ant(1)
        state.expunge(handle=first)
        (copy,) = state.get(pick=("ant", (1,)))  # a second object for the row, read after the write
        state.agrees_with_oracle()
        state.boundary(action="rollback")  # the row is gone; the copy is held, expired
        state.agrees_with_oracle()
        state.get(pick=("ant", (1,)))
        state.agrees_with_oracle()
        if Machine.adapter_factory().capabilities.get_reloads_expired:
            assert "get() found an expired object's row gone" in state.seen
        state.boundary(action="commit")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_get_of_an_expired_object_whose_row_is_gone(Replayed):
    """The machine rarely builds this under the CI profile: a rollback that removes the row of an
    object loaded after the transaction's first write, then get() of its key."""
    _replay_get_of_an_expired_object_whose_row_a_rollback_removed(Replayed)


def _replay_a_failed_flush_after_an_update_of_an_object_inserted_in_the_transaction(machine):
    @settings(max_examples=1, database=None)
    @given(st.none())
    def replay(_):
        state = machine()
        try:
            state.setup(shape="diamond", names=("bee", "cow", "doe", "ant"), generated=(False, False, False, False),
                        unique=(True, False, False, False), seeded=0, versioned=(False, False, False, True))
            bee = state.create(table="bee", name="ann", note_text=None, with_code=True, then_add=True)
            ant = state.create(table="ant", name="ann", note_text=None, with_code=False, then_add=True)
            state.boundary(action="flush")  # ant is inserted at version 1
            state.set_value(handle=ant, pick=("data", '{"n":1}'))
            state.agrees_with_oracle()
            # ant's UPDATE and the failing INSERT into bee, two tables whose middle ones are not
            # in the flush: under flush_order "tables" SQLAlchemy runs ant's UPDATE first.
            state.inject_failure(pick=("duplicate_code", "bee", state.model.objects[bee.hid].key), action="flush")
            state.agrees_with_oracle()
            state.boundary(action="rollback")  # ant is transient again, with the version it reached
            state.agrees_with_oracle()
            state.add(handle=ant)
            state.boundary(action="commit")
            state.agrees_with_oracle()
        finally:
            state.teardown()

    replay()


def test_a_failed_flush_after_an_update_of_an_object_inserted_in_the_transaction(Replayed):
    """The lead's SQLAlchemy report found it (a failed flush left version 2 where the model said 1,
    because the model ordered the tables by the whole schema, not by those in the flush)."""
    _replay_a_failed_flush_after_an_update_of_an_object_inserted_in_the_transaction(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_a_query_after_merge_assigned_every_expired_field(Machine, _):
    state = Machine()
    try:
        state.setup(shape="single", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, False, False), seeded=1, autoflush=False)
        (first,) = state.query(pick=("ant", "name", "ann"))
        state.session_wide(action="expunge_all")
        (copy,) = state.merge(pick=(first, True))  # a second object for the row, fully loaded
        state.session_wide(action="expire_all")
        state.session_wide(action="expunge_all")
        (bare,) = state.merge(pick=(copy, False))  # held again, nothing but its key loaded
        state.agrees_with_oracle()
        state.merge(pick=(first, True))  # every field assigned, none loaded: all of them dirty
        state.agrees_with_oracle()
        state.query(pick=("ant", "name", "ann"))  # the row read now is their snapshot
        state.agrees_with_oracle()
        if Machine.adapter_factory().capabilities.reload_compares_expired_assignments:
            assert "a query completed the snapshot of fields assigned while expired" in state.seen
        state.boundary(action="flush")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_query_completes_the_snapshot_of_fields_merge_assigned_while_expired(Replayed):
    """merge(load=False) of an expired object holds only its key; merge(load=True) onto it then
    assigns every field without reading the row.  A query that reads the row makes it their
    snapshot: values equal to the row are no change (uow drops the object from session.dirty;
    the oracle kept it dirty, as it completed snapshots only of objects with fields missing)."""
    _replay_a_query_after_merge_assigned_every_expired_field(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_a_pending_row_naming_the_key_sqlite_gives_it(Machine, _):
    state = Machine()
    try:
        state.setup(shape="self_ref", names=("ant", "bee", "cow", "doe"), generated=(True, False, False, False),
                    unique=(False, False, False, False), seeded=0, declared=(None, "reference", None, None))
        pending = state.create(name="ann", note_text=None, table="ant", then_add=True, with_code=False)
        state.set_reference_ahead(pick=(pending, "ant_id", 1))  # the id SQLite gives this very row
        state.agrees_with_oracle()
        state.boundary(action="flush")
        state.agrees_with_oracle()
        state.boundary(action="commit")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_pending_row_may_name_the_key_sqlite_generates_for_it(Replayed):
    """Found by the CI profile once the machine drew more: a self-referencing foreign key set by
    value to the key SQLite then generates for the same row passes (SQLite checks it when the
    INSERT ends, with the row in); the oracle took it for a key generated later in the flush."""
    _replay_a_pending_row_naming_the_key_sqlite_gives_it(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_a_stale_delete_behind_a_foreign_key(Machine, _):
    state = Machine()
    try:
        state.setup(shape="diamond", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, False, False), seeded=1, autoflush=True, versioned=(True, False, False, False),
                    declared=(None, "all", None, None))
        (ant,) = state.get(pick=("ant", (2,)))
        # Another connection moves ant 2 to version 2; delete(ant) cascades to cow 6, which doe 8
        # references: the cow's DELETE runs first and fails, the ant's stale row is never reached.
        state.race(pick=(ant, 0, "delete"), retry=True)
        state.agrees_with_oracle()
        state.boundary(action="rollback")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_flush_failing_at_a_foreign_key_before_a_stale_row_names_no_stale_object(Replayed):
    """Found by the CI profile once race retried deletes: with flush_order "rows" the oracle
    checks foreign keys after every statement ran, so it expected the stale DELETE of the ant
    and, after the rollback, the ant expired.  The implementation's first failing statement is
    the cow's DELETE (a foreign key); it never read the ant's row, and the rollback keeps the ant
    as it was read before the transaction wrote anything.  The oracle now follows the error the
    implementation raised (see Model.stale_not_met)."""
    if Replayed.adapter_factory().capabilities.flush_order != "rows":
        pytest.skip(f"{Replayed.adapter_factory().name} declares another flush_order (the replay is about 'rows')")
    _replay_a_stale_delete_behind_a_foreign_key(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_a_row_switch_of_a_child_whose_parent_is_deleted(Machine, _):
    state = Machine()
    try:
        state.setup(shape="chain", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, False, False), seeded=1, autoflush=True, declared=(None, None, None, None))
        (parent,) = state.get(pick=("ant", (2,))).values
        (child,) = state.query(pick=("bee", "name", "ann")).values  # bee 4, whose ant_id is 2
        state.delete(handle=parent)
        state.switch_row(handle=child, name="ann")  # the new bee 4 names no ant
        state.agrees_with_oracle()
        state.boundary(action="flush")
        state.agrees_with_oracle()
        state.boundary(action="commit")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_row_switch_replaces_a_child_that_pointed_at_a_deleted_parent(Replayed):
    """Found by the CI profile once its draws moved: the oracle refused the flush (a held child
    left pointing at a deleted parent) for the marked bee a row switch replaces, whose row takes
    the new bee's values and names no ant.  uow runs the switch's UPDATE and the DELETE."""
    if Replayed.adapter_factory().capabilities.pending_key_conflict != "row_switch":
        pytest.skip(f"{Replayed.adapter_factory().name} declares no row switch (pending_key_conflict)")
    _replay_a_row_switch_of_a_child_whose_parent_is_deleted(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_a_failed_flush_that_read_the_row_of_fields_merge_assigned_while_expired(Machine, _):
    state = Machine()
    try:
        state.setup(shape="diamond", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, True, False), seeded=1, autoflush=True,
                    versioned=(False, False, False, False), declared=(None, "reference", None, "save-update"))
        transient = state.create(name="ann", note_text=None, table="cow", then_add=False, with_code=False)
        (cow,) = state.merge(pick=(transient, True)).values
        (doomed,) = state.get(pick=("cow", (6,))).values
        state.delete(handle=doomed)  # finds doe 8, which references cow 6
        state.agrees_with_oracle()
        state.inject_failure(action="flush", pick=("null_name", "ant", None))  # every flush fails now
        state.agrees_with_oracle()
        state.some_fields(action="expire", fields=("code", "price"), handle=cow)
        state.merge(pick=(transient, True))  # assigns code (unique) and price while expired
        state.agrees_with_oracle()
        doe = state.handles[3]
        relation = next(r for r in state.relations if r.child.name == "doe" and r.parent.name == "cow")
        # The autoflush reads the cow's row first (an expired unique field was assigned), then fails.
        state.append_child(pick=(cow, relation, doe))
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_flush_completes_the_snapshot_of_fields_merge_assigned_while_expired(Replayed):
    """Found by the CI profile once the machine drew more: a flush that reads back an object whose
    fields merge() assigned while expired makes the row their snapshot, as a query does (values
    equal to the row are no change: uow dropped the cow from session.dirty, even though the flush
    then failed; the oracle read back only objects with fields missing, and kept it dirty)."""
    declared = Replayed.adapter_factory().capabilities.flush_reloads_expired
    if declared not in ("at_start", "at_start_for_order"):
        pytest.skip(f"{Replayed.adapter_factory().name} declares flush_reloads_expired={declared!r} (the replay is "
                    "about a flush that reads back at its start)")
    _replay_a_failed_flush_that_read_the_row_of_fields_merge_assigned_while_expired(Replayed)


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_an_insert_before_a_failing_statement_of_a_savepoints_autoflush(Machine, _):
    state = Machine()
    try:
        state.setup(shape="single", names=("ant", "bee", "cow", "doe"), generated=(False, False, False, False),
                    unique=(False, False, False, False), seeded=1, autoflush=True,
                    versioned=(True, False, False, False), declared=(None,))
        state.outside_write(pick=("INSERT", "ant", (3,), {"id": 3, "name": "bob", "note": "w", "code": None,
                                                           "data": None, "price": None, "version": 1}))
        state.agrees_with_oracle()
        state.savepoint(action="begin")
        (ant2,) = state.get(pick=("ant", (2,)))
        state.set_value(handle=ant2, pick=("data", None))
        state.boundary(action="flush")
        state.agrees_with_oracle()
        (ant3,) = state.get(pick=("ant", (3,)))
        state.race(pick=(ant2, 0, "delete"), retry=False)
        state.agrees_with_oracle()
        state.race(pick=(ant3, 2, "change"), retry=False)
        state.agrees_with_oracle()
        state.boundary(action="rollback")
        state.agrees_with_oracle()
        state.merge(pick=(ant2, True))  # ant 2's row is gone: a pending copy at version 3
        state.agrees_with_oracle()
        state.add(handle=ant3)
        state.delete(handle=ant3)
        state.agrees_with_oracle()
        # Its autoflush inserts the copy (version 1), then fails: ant 3's row is gone.
        state.savepoint(action="begin")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_an_insert_before_the_failing_statement_leaves_its_version_1(Replayed):
    """SQLAlchemy's CI run found it once race was drawn: merge() of ant 2, whose DELETE was
    committed, made a pending object at version 3; the autoflush of begin_nested() inserted it
    (version_id_generator writes version 1 onto the object as the INSERT runs), then failed at
    the DELETE of ant 3, whose row another connection had deleted.  SQLAlchemy leaves version 1
    on the object (checked with SQLAlchemy 2.1 alone); the model kept only the INSERT's key
    (failed_flush_keeps_keys_and_versions) and expected version 3.  The model now writes back
    the INSERT's version with its key (FAIL-1, VER-1).  The program follows the states of a
    session that declares both (under uow the first race fails stale, and ant 2 is still held
    when it is merged, which the machine never draws)."""
    caps = Replayed.adapter_factory().capabilities
    if not (caps.insert_writes_version_1 and caps.failed_flush_keeps_keys_and_versions):
        pytest.skip(f"{Replayed.adapter_factory().name} declares insert_writes_version_1="
                    f"{caps.insert_writes_version_1!r}, failed_flush_keeps_keys_and_versions="
                    f"{caps.failed_flush_keeps_keys_and_versions!r} (the replay is about both)")
    _replay_an_insert_before_a_failing_statement_of_a_savepoints_autoflush(Replayed)
