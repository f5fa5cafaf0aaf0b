"""The conformance machine with relationships, cascades and key changes (see relations_oracle).

It is the base machine (``machine.ConformanceMachine``) with one more thing drawn in ``setup``
(how each foreign key is declared: a plain column, a reference, or a reference and a collection
with a cascade), the oracle's relationship layer as its model, and these rules:

* ``set_parent``     ``child.ref = parent`` (or None)
* ``read_parent``    read ``child.ref`` (lazy load, also of an object not held yet)
* ``read_children``  read ``parent.list`` (lazy load)
* ``append_child``   ``parent.list.append(child)`` (also moving a child between parents)
* ``remove_child``   ``parent.list.remove(child)`` (delete-orphan)
* ``set_key``        assign a new natural or composite primary key (keys loaded objects name
                     in a foreign key are favoured)
* ``switch_row``     ``delete(old)`` and add a new object with old's key (a row switch; objects
                     with relationships favoured)
* ``set_reference_ahead``  a new object added to the table of an object whose foreign key then
                     names it, by value (a key SQLite generates only later in the next flush)
                     or as a reference (a key filled after the row is written)

``set_parent`` favours references that close a cycle through rows the next flush inserts.
These biases make the CI profile reach key changes that re-point loaded objects, row switches,
foreign keys completed after their row (cycles) and foreign keys naming a key generated later.

Every base rule still runs, and the model makes each follow the relationships (add cascades
save-update, delete cascades or unlinks, expunge and refresh follow collections, a rollback
restores references and drops loaded collections).  Objects a rule loads without the machine
asking (children of a loaded collection, a parent read through a reference, children a delete
finds) become handles too, so later steps can use them.

The invariant adds to the base one: each reference cached in memory and each loaded collection
(compared as a multiset: no load order is specified) equals the oracle's.
"""

from hypothesis import strategies as st
from hypothesis.stateful import precondition

from . import machine
from .adapter import NOT_CACHED
from .machine import ConformanceMachine, _from_machine
from .program import initialize, rule
from .relations_oracle import CASCADES, RelationsModel, build_relations
from .schemas import NAMES

_NOT_CACHED = object()
# How many times a favoured choice is offered among the others (see rekeyable, parent_choices).
_FAVOURED = 4



class RelationsMachine(ConformanceMachine):
    """The base machine plus relationships, cascades and key changes."""

    relations = ()
    declared = (None,)

    @initialize(
        shape=st.runner().flatmap(lambda machine: st.sampled_from(machine.shapes())),
        names=st.permutations(NAMES).map(tuple),
        generated=st.runner().flatmap(lambda machine: machine.generated_keys()),
        unique=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
        seeded=st.integers(0, 3),
        autoflush=st.runner().flatmap(lambda machine: machine.autoflush_options()),
        versioned=st.runner().flatmap(lambda machine: machine.version_options()),
        declared=st.runner().flatmap(lambda machine: machine.declarations()),
    )
    def setup(self, shape, names, generated, unique, seeded, autoflush=True, versioned=(False, False, False, False),
              declared=(None,)):
        """The base setup, and how each foreign key is declared (in schema order): None (a plain
        column), "reference" (a reference alone), or a collection's cascade."""
        self.declared = declared
        self._build(shape, names, generated, unique, seeded, autoflush, versioned)

    def declarations(self):
        if not self.caps.relationships:
            return st.just((None,))
        return st.tuples(*[st.sampled_from(CASCADES)] * 4)

    def _setup_adapter(self, schema):
        self.relations = build_relations(schema, self.declared)
        for relation in self.relations:
            self._event(f"declared: {'reference' if relation.cascade is None else relation.cascade}")
        self.adapter.setup(self._handed_to_adapter(), schema, self.relations)

    def _new_model(self, schema, rows, autoflush):
        return RelationsModel(schema, self.caps, rows, autoflush, self.relations)

    # -- what the new rules may draw ------------------------------------------------------

    def relation_rules(self):
        return self.usable() and bool(self.relations)

    def parent_choices(self):
        """``(child handle, relation, parent handle or None)``."""
        choices = []
        handles = self.handles_to_edit()
        for relation in self.relations:
            for child in handles:
                if child.table is not relation.child:
                    continue
                choices.append((child, relation, None))
                for parent in handles:
                    if parent.table is relation.parent:
                        choices.extend([(child, relation, parent)] * self._cycle_weight(child, relation, parent))
        return choices

    def _cycle_weight(self, child, relation, parent):
        """How many times a choice is offered: a reference that closes a cycle through rows the
        next flush inserts (an object pointing at itself, or at a pending object that points back)
        counts several times, as only then is a foreign key completed after its row is written."""
        objects = self.model.objects
        target = objects[parent.hid]
        if target.state != machine.PENDING or not relation.parent.generated:
            return 1
        if parent is child or target.links.get(relation.ref_link) == child.hid:
            return _FAVOURED
        return 1

    def reference_reads(self):
        return [(handle, relation) for relation in self.relations for handle in self.handles_to_edit()
                if handle.table is relation.child]

    def collection_reads(self):
        return [(handle, relation) for relation in self.relations if relation.collection
                for handle in self.handles_to_edit() if handle.table is relation.parent]

    def appends(self):
        """``(parent handle, relation, child handle)``."""
        handles = self.handles_to_edit()
        return [(parent, relation, child) for relation in self.relations if relation.collection
                for parent in handles if parent.table is relation.parent
                for child in handles if child.table is relation.child]

    def removals(self):
        """``(parent handle, relation, child handle)`` for each child a loaded collection holds."""
        found = []
        for relation in self.relations:
            if not relation.collection:
                continue
            for parent in self.handles_to_edit():
                held = self.model.objects[parent.hid].links.get(relation.list_link)
                if parent.table is relation.parent and held:
                    found.extend((parent, relation, self.handles[hid]) for hid in held)
        return found

    def rekeyable(self):
        """``(handle, key value or None)`` for handles of tables with a natural (not generated) or
        composite key: None means a fresh value no row has; a pending object may also take the key
        of an object marked for deletion (a row switch, where the implementation makes one; see
        also switch_row)."""
        if not self.caps.primary_key_changes:
            return []
        model = self.model
        choices = []
        for handle in self.handles_to_edit():
            if handle.table.generated or handle.table.versioned:
                # (The oracle's key-changing UPDATE does not check and bump a version column.)
                continue
            # A key that loaded objects name in a foreign key is favoured: only its change makes
            # the implementation re-point them.
            choices.extend([(handle, None)] * (_FAVOURED if self._key_referenced(handle) else 1))
            if model.objects[handle.hid].state == machine.PENDING:
                choices.extend((handle, other.key[0]) for other in model.objects.values()
                               if other.table is handle.table and other.state == machine.PERSISTENT and other.marked)
        return choices

    def switch_candidates(self):
        """Persistent objects of natural- or composite-key tables that ``switch_row`` may replace;
        those with relationships (a loaded object names their key, or they hold references or
        collections) are favoured."""
        if self.caps.pending_key_conflict is None:
            return []
        model = self.model
        found = []
        for handle in self.handles_to_edit():
            obj = model.objects[handle.hid]
            if obj.state != machine.PERSISTENT or obj.marked or handle.table.generated or handle.table.versioned:
                continue
            linked = self._key_referenced(handle) or any(obj.links.get(link) for link in obj.links)
            found.extend([handle] * (_FAVOURED if linked else 1))
        return found

    def _key_referenced(self, handle):
        """Whether a persistent object holds this object's key in a loaded foreign key."""
        obj = self.model.objects[handle.hid]
        if obj.state != machine.PERSISTENT or obj.key is None:
            return False
        return any(other.state == machine.PERSISTENT and other.values.get(column) == obj.key[0]
                   for other in self.model.objects.values()
                   for column, parent in other.table.refs if parent == handle.table.name)

    def ahead_references(self):
        """``(handle, column, value)``: a foreign key to the handle's own table, to be set to the
        key SQLite will give the next object added to that table (max(id) + 1 + the pending
        objects still without a key), which set_reference_ahead adds after the handle.

        Only within one table: there the flush inserts in the order objects were added, which the
        oracle's flush_order 'rows' models; across tables uow inserts parent tables first, which
        it does not (see ORD in RULES.rst)."""
        model = self.model
        choices = []
        for table in model.schema.tables:
            columns = [column for column, parent in table.refs if parent == table.name]
            if not table.generated or not columns:
                continue
            waiting = sum(1 for obj in model.objects.values() if obj.table is table and obj.state == machine.PENDING
                          and obj.key is None and obj.values.get("id") is None)
            value = max([key[0] for key in model.db[table.name]], default=0) + 1 + waiting
            for handle in self.handles_to_edit():
                if handle.table is table and model.objects[handle.hid].state in (machine.PENDING, machine.PERSISTENT):
                    choices.extend((handle, column, value) for column in columns)
        return choices

    # -- rules ----------------------------------------------------------------------------

    @precondition(lambda self: self.relation_rules() and bool(self.parent_choices()))
    @rule(pick=_from_machine("parent_choices"))
    def set_parent(self, pick):
        """``child.ref = parent``: both sides in step; a parent not in the session joins it."""
        self._event("rule: set_parent")
        child, relation, parent = pick
        target = None if parent is None else parent.hid
        if parent is not None and self.model.objects[child.hid].links.get(relation.ref_link) not in (None, target):
            self._event("a child moved to another parent")
        self._attempt(f"{child}.{relation.ref_name} = {parent}",
                      lambda: self.model.set_parent(child.hid, relation, target),
                      lambda: self.adapter.set_reference(child.obj, relation, None if parent is None else parent.obj))

    @precondition(lambda self: self.relation_rules() and bool(self.reference_reads()))
    @rule(pick=_from_machine("reference_reads"))
    def read_parent(self, pick):
        """Read ``child.ref`` (lazy loading through the identity map)."""
        self._event("rule: read_parent")
        handle, relation = pick
        refused, expected, actual = self._attempt(
            f"{handle}.{relation.ref_name}", lambda: self.model.read_parent(handle.hid, relation),
            lambda: self.adapter.read_reference(handle.obj, relation))
        if refused:
            return
        if (actual is None) == (expected is None):
            self._adopt_loaded()
        if (actual is None) != (expected is None) or (actual is not None and self._hid_of(actual) != expected):
            raise self._broken("REL-3", f"{handle}.{relation.ref_name} gave {actual!r}; the oracle expected "
                                 f"{None if expected is None else self.handles[expected]}")

    @precondition(lambda self: self.relation_rules() and bool(self.collection_reads()))
    @rule(pick=_from_machine("collection_reads"))
    def read_children(self, pick):
        """Read ``parent.list`` (lazy loading of the children)."""
        self._event("rule: read_children")
        handle, relation = pick
        refused, expected, actual = self._attempt(
            f"{handle}.{relation.list_name}", lambda: list(self.model.read_children(handle.hid, relation)),
            lambda: self.adapter.read_collection(handle.obj, relation))
        if refused:
            return
        self._adopt_loaded()
        if sorted(map(str, map(self._hid_of, actual))) != sorted(map(str, expected)):
            raise self._broken("REL-4", f"{handle}.{relation.list_name} holds {self._named(map(self._hid_of, actual))}; "
                                        f"the oracle expected {self._named(expected)}")

    @precondition(lambda self: self.relation_rules() and bool(self.appends()))
    @rule(pick=_from_machine("appends"))
    def append_child(self, pick):
        """``parent.list.append(child)`` (the child may move from another parent)."""
        self._event("rule: append_child")
        parent, relation, child = pick
        if self.model.objects[parent.hid].state == machine.DETACHED:
            self._event("append to a collection of a detached object")
        self._attempt(f"{parent}.{relation.list_name}.append({child})",
                      lambda: self.model.append_child(parent.hid, relation, child.hid),
                      lambda: self.adapter.append(parent.obj, relation, child.obj))

    @precondition(lambda self: self.relation_rules() and bool(self.removals()))
    @rule(pick=_from_machine("removals"))
    def remove_child(self, pick):
        """``parent.list.remove(child)`` of a child the loaded collection holds."""
        self._event("rule: remove_child")
        parent, relation, child = pick
        self._attempt(f"{parent}.{relation.list_name}.remove({child})",
                      lambda: self.model.remove_child(parent.hid, relation, child.hid),
                      lambda: self.adapter.remove(parent.obj, relation, child.obj))

    @precondition(lambda self: self.usable() and bool(self.rekeyable()))
    @rule(pick=_from_machine("rekeyable"), then_flush=st.booleans())
    def set_key(self, pick, then_flush):
        """Assign a new primary key (``id``, or ``k1`` of a composite key), maybe flushed at once
        (drawn apart, a later step often expires, rolls back or changes the key again first)."""
        self._event("rule: set_key")
        handle, value = pick
        self._set(handle, handle.table.key[0], next(self.counter) if value is None else value)
        if then_flush:
            self._attempt("flush()", self.model.flush, self.adapter.flush)

    @precondition(lambda self: self.usable() and bool(self.switch_candidates()))
    @rule(target=ConformanceMachine.objects, handle=_from_machine("switch_candidates"), name=st.sampled_from(machine.TEXTS))
    def switch_row(self, handle, name):
        """``delete(old)``, then a new object with old's key is added: the flush turns the DELETE
        and the INSERT into one UPDATE (a row switch), or the add is refused (conflict).  One rule
        for the three steps, because drawn apart they rarely meet in one program."""
        self._event("rule: switch_row")
        refused, _, _ = self._attempt(f"delete({handle})", lambda: self.model.delete(handle.hid),
                                      lambda: self.adapter.delete(handle.obj))
        self._adopt_loaded()  # children the delete found come before the new object
        table = handle.table
        values = self._fresh_values(table, name, None, False)
        values.update(zip(table.key, self.model.objects[handle.hid].key))
        hid = self.model.create(table, values)
        if self.caps.objects_join_on_construction:
            return self._construct(hid, table, values)
        new = self._remember(hid, self.adapter.new(table, table.live(values)), table)
        if not refused:
            self._attempt(f"add({new})", lambda: self.model.add(hid), lambda: self.adapter.add(new.obj))
        return new

    @precondition(lambda self: self.usable() and bool(self.ahead_references()))
    @rule(target=ConformanceMachine.objects, pick=_from_machine("ahead_references"), by_reference=st.booleans(),
          then_flush=st.booleans())
    def set_reference_ahead(self, pick, by_reference=False, then_flush=False):
        """A new object of the handle's table is added after it, and the handle's foreign key
        names the new object: by value, the key SQLite generates for it only later in the next
        flush (a row named before it exists), or (``by_reference``, where the key is a reference)
        as the object, so that the flush fills the key after the handle's row is written (a
        cycle).  Maybe flushed at once.  One rule, because drawn apart (a pending object, then a
        foreign key naming it) these steps rarely meet in one program."""
        self._event("rule: set_reference_ahead")
        handle, column, value = pick
        table = handle.table
        values = self._fresh_values(table, "cy", None, False)
        hid = self.model.create(table, values)
        if self.caps.objects_join_on_construction:
            new = self._construct(hid, table, values)
            if not isinstance(new, machine.Handle):
                return new
        else:
            new = self._remember(hid, self.adapter.new(table, table.live(values)), table)
            refused, _, _ = self._attempt(f"add({new})", lambda: self.model.add(hid), lambda: self.adapter.add(new.obj))
            if refused:
                return new
        relation = next((relation for relation in self.relations
                         if relation.child is table and relation.column == column), None)
        if by_reference and relation is not None:
            self._attempt(f"{handle}.{relation.ref_name} = {new}",
                          lambda: self.model.set_parent(handle.hid, relation, new.hid),
                          lambda: self.adapter.set_reference(handle.obj, relation, new.obj))
        else:
            self._set(handle, column, value)
        if then_flush:
            self._attempt("flush()", self.model.flush, self.adapter.flush)
        return new

    def _attempt(self, label, predict, perform):
        """As the base, and the objects the oracle's operation changed count as touched in the
        frame it ran in (loads fill expired fields; see relations_oracle.touched_in)."""
        model = self.model
        frame = model.frames[-1]
        before = model.looks()

        def predict_and_touch():
            try:
                return predict()
            finally:
                if model.frames and model.frames[-1] is frame:
                    model.touch_changed(before)
        return super()._attempt(label, predict_and_touch, perform)

    def _attempt_in_place(self, label, predict, perform):
        """A JSON value changed in place is no touch: the session learns of it only by comparing
        at the flush, and a rollback puts the value back without counting the object as changed
        (a JSON column is no foreign key, so no loaded collection can differ for it)."""
        return ConformanceMachine._attempt(self, label, predict, perform)

    # -- the invariant --------------------------------------------------------------------

    def _adopt_loaded(self):
        """Objects the oracle loaded during a step (a collection's children, a referenced parent,
        children a delete found) become handles: the implementation must hold each under its key."""
        if len(self.handles) >= len(self.model.objects):
            return
        held = self.adapter.identity_map()
        for hid in range(len(self.handles), len(self.model.objects)):
            obj = self.model.objects[hid]
            found = held.get((obj.table.name, obj.key))
            if found is None:
                raise self._broken("ID-1", f"the oracle loaded {obj!r}, but the implementation holds no object "
                                           f"for {obj.table.name}{obj.key}")
            handle = self._remember(hid, found, obj.table, kind="loaded")
            machine.note(f"{handle} = the object of {obj.table.name}{obj.key}, which the step loaded")

    def _problems(self):
        """The base invariant's, plus every cached reference and loaded collection (REL-14)."""
        self._adopt_loaded()
        problems = super()._problems()
        held = {key: self._hid_of(obj) for key, obj in self.adapter.identity_map().items()}
        for handle in self.live_handles():
            obj = self.model.objects[handle.hid]
            loaded = self.adapter.loaded(handle.obj, handle.table.columns)
            for relation in self.model.references_of(handle.table):
                expected = _resolved(obj.links.get(relation.ref_link, _NOT_CACHED), obj.values, relation, held)
                actual = self.adapter.cached_reference(handle.obj, relation)
                actual = _NOT_CACHED if actual is NOT_CACHED else (None if actual is None else self._hid_of(actual))
                actual = _resolved(actual, loaded, relation, held)
                if actual != expected:
                    problems.append(f"[REL-14] {handle}.{relation.ref_name} holds {self._shown(actual)}; "
                                    f"oracle {self._shown(expected)}")
            for relation in self.model.collections_of(handle.table):
                expected = obj.links.get(relation.list_link)
                actual = self.adapter.loaded_collection(handle.obj, relation)
                if actual is not None:
                    actual = [self._hid_of(item) for item in actual]
                if (actual is None) != (expected is None) or \
                        (actual is not None and sorted(map(str, actual)) != sorted(map(str, expected))):
                    problems.append(f"[REL-14] {handle}.{relation.list_name} holds {self._shown(actual)}; "
                                    f"oracle {self._shown(expected)}")
        return problems

    def _shown(self, value):
        """A reference (an oracle id, None, or not cached) or a collection (a list of them, or
        None: not loaded) as the program names the objects."""
        if value is _NOT_CACHED:
            return "nothing (not cached)"
        if isinstance(value, list):
            return self._named(value)
        if isinstance(value, int) and value < len(self.handles):
            return self.handles[value].name
        return repr(value)


def _resolved(cached, values, relation, held):
    """What a reference stands for: the object it caches, else the held object its loaded foreign
    key names (reading it would return that object without SQL), else not cached.  Whether a
    reference that agrees with its column is cached is the implementation's business."""
    if cached is not _NOT_CACHED:
        return cached
    value = values.get(relation.column)
    if value is not None:
        return held.get((relation.parent.name, (value,)), _NOT_CACHED)
    return _NOT_CACHED


def build_machine(adapter_factory):
    """The machine test_conformance.py and report.py run: the base one with this layer."""
    return machine.build_machine(adapter_factory, RelationsMachine)
