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
from .conditions import Compare, In, IsNull, Like, Not, Or, Query
from .profiles import PROFILE, fixed_draws
from .relations_machine import build_machine
from .schemas import NAMES


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
        with fixed_draws():  # the same programs in CI's whole suite as in a lone run
            run_state_machine_as_test(Machine, settings=settings(settings.get_profile(PROFILE)))
    except AssertionError as failure:
        for marker, defect in Machine.adapter_factory().known_defects.items():
            if marker in str(failure):
                pytest.xfail(defect)
        raise


PLAIN = (False, False, False, False)  # no generated keys, no UNIQUE code, no version column


def replay(machine, program, **setup):
    """Run ``program(state)`` once, by hand, on a new machine set up with ``setup`` (table names
    ``NAMES``, no generated key and no UNIQUE column unless it says otherwise), and tear the
    machine down whatever happens.  It runs inside a Hypothesis test of one example, because the
    machine's note() and event() need one."""
    arguments = dict(names=NAMES, generated=PLAIN, unique=PLAIN) | setup

    @settings(max_examples=1, database=None)
    @given(st.none())
    def run(_):
        state = machine()
        try:
            state.setup(**arguments)
            program(state)
        finally:
            state.teardown()

    run()


@pytest.fixture
def Replayed(Machine):
    """The machine for the replays below, which call add(), expunge() and the rest of a session
    shaped as SQLAlchemy's is: not one whose objects join it when constructed (Pony)."""
    if Machine.adapter_factory().capabilities.objects_join_on_construction:
        pytest.skip(f"the replays add and expunge objects; {Machine.adapter_factory().name} declares "
                    "objects_join_on_construction (no add(), no expunge())")
    return Machine


def test_a_new_row_given_the_key_of_a_re_added_deleted_object_detaches_that_object(Replayed):
    """Found by the "dev" profile: the oracle kept both objects persistent under one key.  Where
    the implementation refuses to re-add such an object (attach_without_row), the replay checks the
    refusal and the new row instead."""
    def program(state):
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

    replay(Replayed, program, shape="parent_child", generated=(False, True, False, False), seeded=1)


def test_get_of_an_expired_object_whose_row_is_gone(Replayed):
    """The machine rarely builds this under the CI profile: a rollback that removes the row of an
    object loaded after the transaction's first write, then get() of its key."""
    def program(state):
        first = state.create(name="ann", note_text=None, table="ant", then_add=True, with_code=False)
        state.boundary(action="flush")  # the transaction's first write: row ant(1)
        state.expunge(handle=first)
        (copy,) = state.get(pick=("ant", (1,)))  # a second object for the row, read after the write
        state.agrees_with_oracle()
        state.boundary(action="rollback")  # the row is gone; the copy is held, expired
        state.agrees_with_oracle()
        state.get(pick=("ant", (1,)))
        state.agrees_with_oracle()
        if Replayed.adapter_factory().capabilities.get_reloads_expired:
            assert "get() found an expired object's row gone" in state.seen
        state.boundary(action="commit")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="single", seeded=0)


def test_a_failed_flush_after_an_update_of_an_object_inserted_in_the_transaction(Replayed):
    """The lead's SQLAlchemy report found it (a failed flush left version 2 where the model said 1,
    because the model ordered the tables by the whole schema, not by those in the flush)."""
    def program(state):
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

    replay(Replayed, program, shape="diamond", names=("bee", "cow", "doe", "ant"), unique=(True, False, False, False),
           seeded=0, versioned=(False, False, False, True))


def test_a_query_completes_the_snapshot_of_fields_merge_assigned_while_expired(Replayed):
    """merge(load=False) of an expired object holds only its key; merge(load=True) onto it then
    assigns every field without reading the row.  A query that reads the row makes it their
    snapshot: values equal to the row are no change (uow drops the object from session.dirty;
    the oracle kept it dirty, as it completed snapshots only of objects with fields missing)."""
    def program(state):
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
        if Replayed.adapter_factory().capabilities.reload_compares_expired_assignments:
            assert "a query completed the snapshot of fields assigned while expired" in state.seen
        state.boundary(action="flush")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="single", seeded=1, autoflush=False)


def test_a_pending_row_may_name_the_key_sqlite_generates_for_it(Replayed):
    """Found by the CI profile once the machine drew more: a self-referencing foreign key set by
    value to the key SQLite then generates for the same row passes (SQLite checks it when the
    INSERT ends, with the row in); the oracle took it for a key generated later in the flush."""
    def program(state):
        pending = state.create(name="ann", note_text=None, table="ant", then_add=True, with_code=False)
        state.set_reference_ahead(pick=(pending, "ant_id", 1))  # the id SQLite gives this very row
        state.agrees_with_oracle()
        state.boundary(action="flush")
        state.agrees_with_oracle()
        state.boundary(action="commit")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="self_ref", generated=(True, False, False, False), seeded=0,
           declared=(None, "reference", None, None))


def test_a_flush_failing_at_a_foreign_key_before_a_stale_row_names_no_stale_object(Replayed):
    """Found by the CI profile once race retried deletes: with flush_order "rows" the oracle
    checks foreign keys after every statement ran, so it expected the stale DELETE of the ant
    and, after the rollback, the ant expired.  The implementation's first failing statement is
    the cow's DELETE (a foreign key); it never read the ant's row, and the rollback keeps the ant
    as it was read before the transaction wrote anything.  The oracle now follows the error the
    implementation raised (see Model.stale_not_met)."""
    if Replayed.adapter_factory().capabilities.flush_order != "rows":
        pytest.skip(f"{Replayed.adapter_factory().name} declares another flush_order (the replay is about 'rows')")

    def program(state):
        (ant,) = state.get(pick=("ant", (2,)))
        # Another connection moves ant 2 to version 2; delete(ant) cascades to cow 6, which doe 8
        # references: the cow's DELETE runs first and fails, the ant's stale row is never reached.
        state.race(pick=(ant, 0, "delete"), retry=True)
        state.agrees_with_oracle()
        state.boundary(action="rollback")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="diamond", seeded=1, autoflush=True, versioned=(True, False, False, False),
           declared=(None, "all", None, None))


def test_a_row_switch_replaces_a_child_that_pointed_at_a_deleted_parent(Replayed):
    """Found by the CI profile once its draws moved: the oracle refused the flush (a held child
    left pointing at a deleted parent) for the marked bee a row switch replaces, whose row takes
    the new bee's values and names no ant.  uow runs the switch's UPDATE and the DELETE."""
    if Replayed.adapter_factory().capabilities.pending_key_conflict != "row_switch":
        pytest.skip(f"{Replayed.adapter_factory().name} declares no row switch (pending_key_conflict)")

    def program(state):
        (parent,) = state.get(pick=("ant", (2,))).values
        (child,) = state.query(pick=("bee", "name", "ann")).values  # bee 4, whose ant_id is 2
        state.delete(handle=parent)
        state.switch_row(handle=child, name="ann")  # the new bee 4 names no ant
        state.agrees_with_oracle()
        state.boundary(action="flush")
        state.agrees_with_oracle()
        state.boundary(action="commit")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="chain", seeded=1, autoflush=True, declared=(None, None, None, None))


def test_a_flush_completes_the_snapshot_of_fields_merge_assigned_while_expired(Replayed):
    """Found by the CI profile once the machine drew more: a flush that reads back an object whose
    fields merge() assigned while expired makes the row their snapshot, as a query does (values
    equal to the row are no change: uow dropped the cow from session.dirty, even though the flush
    then failed; the oracle read back only objects with fields missing, and kept it dirty)."""
    declared = Replayed.adapter_factory().capabilities.flush_reloads_expired
    if declared not in ("at_start", "at_start_for_order"):
        pytest.skip(f"{Replayed.adapter_factory().name} declares flush_reloads_expired={declared!r} (the replay is "
                    "about a flush that reads back at its start)")

    def program(state):
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

    replay(Replayed, program, shape="diamond", unique=(False, False, True, False), seeded=1, autoflush=True,
           versioned=PLAIN, declared=(None, "reference", None, "save-update"))


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

    def program(state):
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

    replay(Replayed, program, shape="single", seeded=1, autoflush=True, versioned=(True, False, False, False),
           declared=(None,))


def test_a_select_answers_with_sql_three_valued_logic(Machine):
    """QRY-4 on the two seeded rows (ann and bob, their notes NULL): a comparison with NULL is
    unknown, so ``note != 'x'``, ``NOT note == 'x'`` and ``NOT note IN ('x')`` return neither;
    ``note IS NULL OR note == 'x'`` returns both (descending by name: bob first); LIKE ignores ASCII
    case; count, exists and first are cut by limit and offset.  Each step checks the implementation
    against the oracle; the asserts check what the oracle said."""
    if not Machine.adapter_factory().capabilities.select:
        pytest.skip(f"{Machine.adapter_factory().name} declares select=False")

    def program(state):
        def select(*where, order=(("id", False),), **paging):
            return list(state.select(pick=("ant", Query(tuple(where), order, **paging))).values)

        for unknown in (Compare("note", "!=", "x"), Not(Compare("note", "==", "x")), Not(In("note", ("x",)))):
            assert select(unknown) == []
        both = select(Or((IsNull("note"), Compare("note", "==", "x"))), order=(("name", True), ("id", False)))
        assert [state.model.objects[handle.hid].values["name"] for handle in both] == ["bob", "ann"]
        assert select(Like("name", "A%"), Compare("id", ">=", 0)) == []  # ann, held now: no new object
        for result in ("count", "exists", "first"):
            select(Like("name", "%N%"), limit=1, offset=1, result=result)  # ann only, then skipped
        state.agrees_with_oracle()
        assert "a query's condition was unknown (NULL) for a row" in state.seen

    replay(Machine, program, shape="single", seeded=2)


def test_a_weak_identity_map_lets_go_only_of_objects_without_work(Machine):
    """ID-6: the program drops a clean object and one with an unflushed change and collects: the
    session lets the clean one go, and a get() of its row then loads a new object; it keeps the
    changed one, whose change the commit writes.  (The machine's forget rule draws such steps;
    this is one of them, written out.)"""
    if not Machine.adapter_factory().capabilities.weak_identity_map:
        pytest.skip(f"{Machine.adapter_factory().name} declares weak_identity_map=False")

    def program(state):
        (clean,) = state.get(pick=("ant", (1,)))
        (changed,) = state.get(pick=("ant", (2,)))
        state.set_text(handle=changed, field="name", value="cy")
        state.forget(pick=(clean, changed))
        state.agrees_with_oracle()
        assert clean.collected and not changed.collected
        (again,) = state.get(pick=("ant", (1,)))  # a new object for the row
        state.boundary(action="commit")
        state.agrees_with_oracle()
        assert state.model.committed["ant"][(2,)]["name"] == "cy"

    replay(Machine, program, shape="single", generated=(True, False, False, False), seeded=2)


def test_wb_fixed_draws_ignore_the_constants_of_loaded_modules():
    """Within fixed_draws, Hypothesis's pool of constants read from the project's loaded modules
    is empty (profiles.py, loaded, holds 100 and 1000), and it comes back afterwards."""
    from hypothesis.internal.conjecture import providers

    assert providers._get_local_constants().integers
    with fixed_draws():
        assert not providers._get_local_constants().integers
        assert not providers._get_local_constants().strings
    assert providers._get_local_constants().integers


def test_assigning_its_own_value_to_a_deleted_object_is_a_touch_at_a_savepoint_rollback(Replayed):
    """Found by the CI profile once its draws moved: bee 2, loaded in ant 2's collection, is
    deleted and flushed; in a savepoint its name is assigned the value it holds, a flush fails,
    the savepoint rolls back.  The assignment touched a bee in the rolled-back level, so ant.bees
    is dropped (REL-13), as uow does for a persistent object.  uow kept it: for an object of a
    class with a JSON column the savepoint had taken a "precaution" memento at its start
    (UndoLog.remember_deleted_json), the assignment recorded nothing more, and the rollback
    counted a precaution that differs in nothing as no change (uow-weak, whose data is text,
    took no precaution and dropped it).  Now an assignment to such an object makes its
    precaution a touch (mementos.precaution_touched)."""
    if not Replayed.adapter_factory().capabilities.relationships:
        pytest.skip(f"{Replayed.adapter_factory().name} declares relationships=False")

    def program(state):
        (ant,) = state.get(pick=("ant", (2,)))
        bees = next(relation for relation in state.relations if relation.child.name == "bee")
        state.read_children(pick=(ant, bees))
        bee = state.handles[1]  # loaded_0, bee 2
        state.race(pick=(bee, 0, "delete"), retry=False)  # its DELETE flushed (and committed)
        state.agrees_with_oracle()
        state.savepoint(action="begin")
        state.create(name="ann", note_text=None, table="ant", then_add=True, with_code=False)
        state.revert_field(field="name", handle=bee)
        state.inject_failure(action="flush", pick=("duplicate_code", "ant", (1,)))
        state.agrees_with_oracle()
        state.savepoint(action="rollback")
        state.agrees_with_oracle()

    replay(Replayed, program, shape="chain", generated=(True, True, True, True), unique=(True, True, False, True),
           seeded=2, autoflush=True, declared=("save-update", "save-update", None, None))
