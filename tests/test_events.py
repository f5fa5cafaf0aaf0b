"""Registering and removing event listeners: what listen() and remove_listener() refuse, and what
their errors say.  (The order in which events fire is checked in tests/reliability/test_transactions.py.)"""

import pytest

import uow
from uow import errors


def audit(session, **info):
    pass


def test_an_unknown_event_is_refused_listing_the_events(session):
    every_event = (
        "before_begin, after_begin, before_flush, after_flush, before_commit, after_commit, "
        "before_rollback, after_rollback, before_savepoint, after_savepoint, "
        "before_release_savepoint, after_release_savepoint, "
        "before_rollback_to_savepoint, after_rollback_to_savepoint"
    )
    for register in (uow.listen, uow.remove_listener):
        with pytest.raises(errors.UowError) as raised:
            register(session, "before_teleport", audit)
        assert str(raised.value) == f"there is no event 'before_teleport'; the events are: {every_event}"


def test_a_listener_must_be_callable(session):
    with pytest.raises(errors.UowError) as raised:
        uow.listen(session, "after_flush", "audit")
    assert str(raised.value) == "listen(): the listener for 'after_flush' must be callable, got 'audit'"
    session.flush()  # nothing was registered


def test_listening_to_something_that_is_not_a_session_is_refused(conn):
    """The connection is the likeliest mistake: it is what the session was made from."""
    with pytest.raises(errors.UowError) as raised:
        uow.listen(conn, "after_flush", audit)
    assert str(raised.value) == f"listen(): {conn!r} is neither a Session nor the Session class"


def test_removing_a_listener_that_is_not_listening_is_an_error_naming_it(session):
    with pytest.raises(errors.UowError) as raised:
        uow.remove_listener(session, "after_flush", audit)
    assert str(raised.value) == f"remove_listener(): {audit!r} is not listening to 'after_flush'"
    uow.listen(session, "after_flush", audit)
    uow.remove_listener(session, "after_flush", audit)
    with pytest.raises(errors.UowError, match="is not listening"):
        uow.remove_listener(session, "after_flush", audit)


def test_remove_listener_on_something_that_is_not_a_session_names_remove_listener(conn):
    with pytest.raises(errors.UowError) as raised:
        uow.remove_listener(conn, "after_flush", audit)
    assert str(raised.value) == f"remove_listener(): {conn!r} is neither a Session nor the Session class"
