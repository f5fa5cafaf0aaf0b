"""The flush planner: which statements a flush runs, in which order, and why -- as plain data.

Planning is separate from writing.  :func:`build_plan` turns the session's changes into a
:class:`FlushPlan`: a list of :class:`Step` records, each a batch of row actions sent as one
statement shape, and the edges that ordered them, each with its reason, such as::

    INSERT Order(new #7) after INSERT User(new #3): orders.user_id references users.id

Nothing here touches SQLite, so a plan can be printed, drawn, compared in a test, or inspected
before anything runs.  Read the modules in this order:

* ``records``      the plan as data: StepKind, StepPurpose, RowAction, Edge, Step, FlushPlan
* ``actions``      one row action per row to write (and the row switch)
* ``edges``        which row must be written before which, and why
* ``topological``  the one deterministic topological sort, in waves (CREATE TABLE uses it too)
* ``schedule``     waves of actions into steps; cycles broken at a nullable foreign key

The same operations in the same order always give the same plan.
"""

from collections.abc import Callable, Iterable

from ..states import InstanceState
from .actions import make_actions
from .edges import find_edges
from .records import Constraint, Edge, FlushPlan, RowAction, Step, StepKind, StepPurpose
from .schedule import schedule


def build_plan(inserts: Iterable[InstanceState], updates: Iterable[tuple[InstanceState, tuple[str, ...]]],
               deletes: Iterable[InstanceState], held_states: Callable[[], Iterable[InstanceState]]) -> FlushPlan:
    """Plan a flush.

    ``inserts``: pending states in session order; ``updates``: ``(state, changed names)`` in
    session order; ``deletes``: states marked for deletion in session order; ``held_states``:
    a callable returning the session's persistent states, used only to refuse deletes that would
    leave a loaded child pointing nowhere.
    """
    actions, writers = make_actions(inserts, updates, deletes)
    edges = find_edges(actions, writers, held_states)
    steps, edges = schedule(actions, edges)
    return FlushPlan(steps, edges)


__all__ = ["build_plan", "Constraint", "Edge", "FlushPlan", "RowAction", "Step", "StepKind", "StepPurpose"]
