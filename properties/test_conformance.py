"""The conformance suite for the implementation named by ``UOW_IMPL`` (default: uow itself).

Run it with ``pytest properties`` or ``python -m properties.report``; ``HYPOTHESIS_PROFILE``
chooses the settings (see conftest.py).  The programs the "ci" profile draws are fixed by the
machine's source, so a program another profile found is kept below as a plain replay.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from .adapter import load_adapter
from .profiles import PROFILE
from .relations_machine import build_machine

Machine = build_machine(load_adapter())
TestConformance = Machine.TestCase
TestConformance.settings = settings(settings.get_profile(PROFILE))


@settings(max_examples=1, database=None)
@given(st.none())  # the machine's note() and event() need a running Hypothesis test
def _replay_a_new_row_taking_the_key_of_a_re_added_deleted_object(_):
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
        attached = state.caps.attach_deleted == "attach"
        assert ("a new row took the key of a stale object" in state.seen) is attached
        state.boundary(action="rollback")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_new_row_given_the_key_of_a_re_added_deleted_object_detaches_that_object():
    """Found by the "dev" profile: the oracle kept both objects persistent under one key.  Where
    the implementation refuses to re-add such an object (attach_deleted), the replay checks the
    refusal and the new row instead."""
    _replay_a_new_row_taking_the_key_of_a_re_added_deleted_object()


@settings(max_examples=1, database=None)
@given(st.none())
def _replay_get_of_an_expired_object_whose_row_a_rollback_removed(_):
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
        if Machine.adapter_factory().capabilities.get_checks_expired:
            assert "get() found an expired object's row gone" in state.seen
        state.boundary(action="commit")
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_get_of_an_expired_object_whose_row_is_gone():
    """The machine rarely builds this under the CI profile: a rollback that removes the row of an
    object loaded after the transaction's first write, then get() of its key."""
    _replay_get_of_an_expired_object_whose_row_a_rollback_removed()
