"""Why is this object in the unit of work?  ``session.explain(obj)`` answers, from the records.

A learner who sees an INSERT they did not write, or an UPDATE of a row they never touched, needs
more than ``dirty_fields()``: which ``add()`` or which cascade from which object put the row in
the flush, what changes old -> new, and which ordering constraints place its statement.  Every
answer here is read from what the session already records, nothing is guessed:

* the object's lifecycle state (``states``);
* for a pending or marked object, the cascade that brought it in, if any, with its source object
  and relationship (``Registers.causes``, recorded by ``lifecycle`` and ``cascades``), or the
  ``merge()`` that made it as a copy (recorded by ``features.merging``); no cause means the
  user's own ``add()`` or ``delete()``;
* for a child whose reference a parent's ``delete()`` cleared, that parent (what the delete
  did, kept in the *marked* register so that ``add()`` can take it back);
* for a persistent object, the fields that differ from the snapshot, old -> new (``tracking``);
* the plan the next flush would run (``planner``): the object's statements, the foreign keys it
  takes from a parent's new key (dependency processing), a row switch, and the ordering edges
  that place it, each with its reason.

:class:`Explanation` is a plain record that prints as a short report::

    Order(new #2) is pending: added to the session, not inserted yet.
    Values to insert:
      total = 5
    Why it is in the next flush:
      - save-update cascade: it is in User(new #1).orders (User.orders cascades save-update)
    What the flush writes:
      step 2 of 2: INSERT orders (user_id, total) reading back (id): 1 row
        user_id = id of User(new #1)
    Ordering:
      - INSERT Order(new #2) after INSERT User(new #1): orders.user_id references users.id
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import UowError
from .planner import Constraint, FlushPlan
from .planner.records import ColumnChange, RowAction, constraints_of
from .collection import Collection
from .registers import DELETE, DELETE_ORPHAN, MERGE, SAVE_UPDATE, TAKEN_BACK, Registers
from .sentinels import MISSING, NOT_LOADED
from .states import DELETED, DETACHED, PENDING, PERSISTENT, STATE_ATTRIBUTE, TRANSIENT, ObjectState
from .tracking import ChangeTracker, changed_fields, original_value

# What each state means, in the words the report opens with.
STATE_MEANINGS = {
    TRANSIENT: "in no session and has no row",
    PENDING: "added to the session, not inserted yet",
    PERSISTENT: "has a row, held in the identity map",
    DELETED: "its row was deleted by a flush in this transaction (commit makes it final, rollback brings it back)",
    DETACHED: "had a row, and is in no session now",
}


@dataclasses.dataclass(frozen=True)
class Reason:
    """One reason an object is (or is not) in the next flush.

    ``kind`` is one of: ``"added"`` (the user's add()), ``"deleted"`` (the user's delete()),
    ``"save-update"``, ``"delete"``, ``"delete-orphan"`` (a cascade), ``"taken back"`` (a delete
    taken back restored a cancelled insert), ``"merge"`` (merge() made it as the copy of an object
    from outside the session, whose key no row has), ``"changed"`` (fields differ from the snapshot),
    ``"reference cleared"`` (a parent's delete set this child's reference to NULL),
    ``"mark_dirty"``, ``"row switch"``, ``"not in the flush"``.
    """

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


@dataclasses.dataclass(frozen=True)
class PlannedStatement:
    """One statement of the next flush that writes the object's row: its step and what it changes."""

    number: int          # the step's number in the plan (1-based)
    of: int              # how many steps the plan has
    step: str            # the step as the plan lists it: ``INSERT orders (user_id, total) ...``
    changes: tuple[ColumnChange, ...]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """What ``session.explain(obj)`` found: state, reasons, changes, statements and ordering.

    ``changes`` are the fields that differ from the snapshot (old -> new) for a persistent object,
    the values it holds for a pending one (``old`` is MISSING);
    ``expired`` the fields that reload when read; ``statements`` the steps of the next flush that
    write the row; ``ordering`` the plan's constraints that involve it, each with its reason;
    ``plan_error`` the error planning the next flush would raise (a cycle that cannot be broken...).
    """

    label: str
    state: ObjectState
    reasons: tuple[Reason, ...]
    changes: tuple[ColumnChange, ...] = ()
    expired: tuple[str, ...] = ()
    statements: tuple[PlannedStatement, ...] = ()
    ordering: tuple[Constraint, ...] = ()
    plan_error: str | None = None

    @property
    def in_flush(self) -> bool:
        """True when the next flush writes the object's row."""
        return bool(self.statements)

    def __str__(self) -> str:
        lines = [f"{self.label} is {self.state.value}: {STATE_MEANINGS[self.state]}."]
        if self.changes:
            lines.append("Values to insert:" if self.state is PENDING else
                         "Changed since loaded or last flushed (old -> new):")
            lines.extend(f"  {change}" for change in self.changes)
        if self.expired:
            lines.append(f"Expired (reloaded when read): {', '.join(self.expired)}")
        heading = "Why it is in the next flush:" if self.in_flush or self.plan_error else "The next flush:"
        lines.append(heading)
        lines.extend(f"  - {reason}" for reason in self.reasons)
        if self.statements:
            lines.append("What the flush writes:")
            said = {str(change) for change in self.changes}  # (an UPDATE's changes are listed above)
            for statement in self.statements:
                lines.append(f"  step {statement.number} of {statement.of}: {statement.step}")
                lines.extend(f"    {change}" for change in statement.changes if str(change) not in said)
        if self.ordering:
            lines.append("Ordering:")
            lines.extend(f"  - {constraint}" for constraint in self.ordering)
        if self.plan_error:
            lines.append(f"The next flush would fail: {self.plan_error}")
        return "\n".join(lines)


def explain(obj: Any, owner: object, registers: Registers, tracker: ChangeTracker,
            make_plan: Callable[[], FlushPlan]) -> Explanation:
    """Explain ``obj`` for the session ``owner`` (see the module docstring).  ``make_plan``
    returns the plan the next flush would run; it is called only for an object the flush may
    write, and an error it raises is reported, not raised."""
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    label = repr(obj) if state is None else state.describe()
    status = TRANSIENT if state is None else state.status
    if state is None or state.session is not owner:
        if state is not None and state.session is not None:
            return Explanation(label, status, (Reason("not in the flush", "it belongs to another session; ask that one"),))
        advice = ("add() it to have it inserted" if status is TRANSIENT else
                  "its row is gone; merge() writes a copy as a new row" if state is not None and state.row_deleted else
                  "add() re-attaches it, and a flush then writes what changed while it was away")
        return Explanation(label, status, (Reason("not in the flush", f"no session holds it: {advice}"),))
    if status is DELETED:
        return Explanation(label, status, (Reason("not in the flush", "its DELETE was already flushed"),))
    reasons = _reasons(state, registers, tracker)
    changes: tuple[ColumnChange, ...] = ()
    expired: tuple[str, ...] = ()
    if status is PENDING:
        values = obj.__dict__
        generated = state.mapper.generated_key
        changes = tuple(ColumnChange(name, MISSING, values[name]) for name in state.mapper.column_names
                        if name in values and not (generated is not None and name == generated.name
                                                   and values[name] is None))  # (SQLite numbers it)
    elif status is PERSISTENT and state.committed is not None:
        values = obj.__dict__
        changes = tuple(ColumnChange(name, original_value(state, name), values[name])
                        for name in changed_fields(state))
        expired = tuple(column.name for column, value in zip(state.mapper.columns, state.committed)
                        if value is NOT_LOADED)
    if not reasons:
        return Explanation(label, status, (Reason("not in the flush", "nothing to write: it equals its snapshot"),),
                           changes, expired)
    try:
        plan = make_plan()
    except UowError as error:
        return Explanation(label, status, tuple(reasons), changes, expired, plan_error=str(error))
    statements, ordering = _place(state, plan, reasons)
    if status is PENDING:  # a key the flush copies from a parent is shown with the statement, not as NULL
        planned = {change.name for statement in statements for change in statement.changes}
        changes = tuple(change for change in changes if change.name not in planned)
    if not statements:
        reasons.append(Reason("not in the flush", "the plan has no statement for its row"))
    return Explanation(label, status, tuple(reasons), changes, expired, statements, ordering)


def _reasons(state: Any, registers: Registers, tracker: ChangeTracker) -> list[Reason]:
    """Why the session has work for this object, from its records (before any plan is made)."""
    reasons = []
    cause = registers.causes.get(state)
    if cause is not None:
        reasons.append(_cause_reason(state, *cause))
    elif state.status is PENDING:
        reasons.append(Reason("added", "add() (or add_all()) was called with it, not a cascade"))
    elif state in registers.marked:
        reasons.append(Reason("deleted", "delete() was called with it, not a cascade"))
    if state.status is PERSISTENT and state not in registers.marked:
        for parent, done in registers.marked.items():
            for child, cleared in done or ():
                if child is state.obj and cleared is not None:
                    collection = cleared.collection
                    reasons.append(Reason("reference cleared", (
                        f"deleting {parent.describe()} set its {cleared.name} to None "
                        f"({collection.entity.__name__}.{collection.name} has no delete cascade)")))
        if state in tracker.forced:
            reasons.append(Reason("mark_dirty", "mark_dirty() asked for every column to be written"))
        names = changed_fields(state) if state.committed is not None else ()
        if names:
            reasons.append(Reason("changed", f"{', '.join(names)} differ{'s' if len(names) == 1 else ''} "
                                             f"from the snapshot (dirty means differs, not assigned)"))
    return reasons


def _cause_reason(state: Any, cascade: str, source: Any, relationship: Any) -> Reason:
    """A recorded cause (``Registers.causes``) of ``state`` as a sentence naming the source and the
    relationship.  A cause is recorded when the object comes in; a save-update source may let go of
    it later (the object stays pending, as in SQLAlchemy), so what the source holds now is read
    before the sentence says "is" (without SQL: a collection not loaded is taken as holding it)."""
    if cascade == MERGE:
        return _merge_reason(source, relationship)
    source_label = source.describe()
    if cascade == TAKEN_BACK:
        return Reason(cascade, f"add() of {source_label} took back its delete, which had cancelled this insert")
    owner = f"{relationship.entity.__name__}.{relationship.name}"
    if cascade == SAVE_UPDATE:
        held = source.obj.__dict__.get(relationship.name, NOT_LOADED)
        if held is not NOT_LOADED:
            holds = any(item is state.obj for item in held) if isinstance(relationship, Collection) \
                else held is state.obj
            if not holds:
                return Reason(cascade, f"{source_label}.{relationship.name} held it when it came in ({owner} cascades "
                                       f"save-update), and no longer does; it stays pending: expunge() it to leave "
                                       f"it out of the flush")
        if isinstance(relationship, Collection):
            return Reason(cascade, f"it is in {source_label}.{relationship.name}, and {owner} cascades save-update")
        return Reason(cascade, f"{source_label}.{relationship.name} is this object, and {owner} cascades save-update")
    if cascade == DELETE:
        return Reason(cascade, f"{source_label} is marked for deletion, and {owner} cascades delete to it")
    assert cascade == DELETE_ORPHAN
    return Reason(cascade, f"it was removed from {source_label}.{relationship.name}, and {owner} cascades delete-orphan")


def _merge_reason(source: Any, relationship: Any) -> Reason:
    """merge() made this object as the copy of ``source``, an object from outside the session (reached
    along ``relationship``'s merge cascade, or merged by the user when None)."""
    state = source.__dict__.get(STATE_ATTRIBUTE)
    mapper = type(source).__mapper__
    label = state.describe() if state is not None and state.key is not None else mapper.describe(source.__dict__)
    where = "in no session" if state is None or state.session is None else "of another session"
    keyed = state is not None and state.key is not None or \
        all(source.__dict__.get(name) is not None for name in mapper.pk_names)
    text = (f"merge() made this new object as the copy of {label} ({where}), "
            f"{'whose key no row has' if keyed else 'which has no key'}")
    if relationship is not None:
        text += f", reached by {relationship.entity.__name__}.{relationship.name}'s merge cascade"
    return Reason(MERGE, text)


def _place(state: Any, plan: FlushPlan, reasons: list[Reason]
           ) -> tuple[tuple[PlannedStatement, ...], tuple[Constraint, ...]]:
    """The plan's statements for the row of ``state``, and the ordering edges that involve it."""
    statements = []
    actions: list[RowAction] = []
    for number, step in enumerate(plan.steps, 1):
        for action in step.actions:
            if action.state is state or action.switch_from is state:
                actions.append(action)
                statements.append(PlannedStatement(number, len(plan.steps), str(step), tuple(action.changes())))
            if action.switch_from is state:
                reasons.append(Reason("row switch", (
                    f"{action.state.describe()} was added with this object's key: the DELETE of this row and "
                    f"the INSERT of that one become one UPDATE of the row")))
            elif action.state is state and action.switch_from is not None:
                reasons.append(Reason("row switch", (
                    f"{action.switch_from.describe()}, marked for deletion, holds this key: its row is updated "
                    f"to this object's values instead of a DELETE and an INSERT")))
    edges = [edge for edge in plan.edges if edge.before in actions or edge.after in actions]
    return tuple(statements), tuple(constraints_of(edges))
