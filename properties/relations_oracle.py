"""The oracle's relationship layer: references, collections, cascades and key changes.

Like ``oracle``, a specification made of dicts and lists that imports nothing from any ORM.
Each foreign key of a drawn schema may be declared as a relationship (:class:`Relation`):

* a **reference** on the child (``bee.ant``, many-to-one through the column ``ant_id``), and
* optionally a **collection** on the parent (``ant.bees``), the children whose reference points
  at it, with a drawn ``cascade``.

What an object remembers of them lives in ``Obj.links``: ``("ref", column)`` is the object a
reference holds once read or assigned (absent: not cached, so it follows the column), and
``("list", child table, column)`` the handles a loaded collection holds (absent: not loaded).

The rules it follows are RULES.rst's groups REL (relationships) and KEY (key changes); each is
cited by its id where the model applies it.
"""

from .oracle import DELETED, DETACHED, IN_SESSION, PENDING, PERSISTENT, TRANSIENT, Model, Obj, Refused

# The relationship declarations a foreign key may be drawn with: None (a plain column, as in the
# base machine), a reference alone, or a reference with a collection and these cascades.
CASCADES = (None, "reference", "save-update", "save-update, expunge, refresh", "all", "all, delete-orphan")


def cascade_names(text):
    """The set of cascades a collection's ``cascade`` text names ("all" spelled out)."""
    names = set()
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            names.update(("save-update", "delete", "expunge", "refresh"))
        elif part:
            names.add(part)
    return frozenset(names)


class Relation:
    """One foreign key declared as a relationship: ``child.<ref_name>`` and maybe ``parent.<list_name>``.

    (A plain class, not a dataclass, so that a failing program prints it as its short repr.)
    """

    __slots__ = ("child", "column", "parent", "cascade")

    def __init__(self, child, column, parent, cascade):
        self.child = child  # schemas.Table
        self.column = column
        self.parent = parent  # schemas.Table
        self.cascade = cascade  # the collection's cascade text; None: a reference alone

    @property
    def ref_name(self):
        return self.column[:-len("_id")]

    @property
    def list_name(self):
        return f"{self.child.name}s"

    @property
    def collection(self):
        return self.cascade is not None

    @property
    def cascades(self):
        return cascade_names(self.cascade) if self.cascade is not None else frozenset()

    @property
    def ref_link(self):
        return ("ref", self.column)

    @property
    def list_link(self):
        return ("list", self.child.name, self.column)

    def __repr__(self):
        shown = f", {self.parent.name}.{self.list_name} cascade={self.cascade!r}" if self.collection else ""
        return f"Relation({self.child.name}.{self.ref_name}{shown})"


def build_relations(schema, choices):
    """The relations for a schema's foreign keys, in schema order, from drawn ``CASCADES`` values."""
    relations = []
    position = 0
    for table in schema.tables:
        for column, parent in table.refs:
            choice = choices[position % len(choices)]
            position += 1
            if choice is None:
                continue
            cascade = None if choice == "reference" else choice
            relations.append(Relation(table, column, schema.table(parent), cascade))
    return tuple(relations)


def touched_in(frame):
    """``{hid: cached references}`` of the objects touched (assigned, added, deleted, expunged,
    expired, refreshed, loaded into, written by a flush) while ``frame`` was the innermost, with
    the references each had when first touched: what a rollback of the frame puts back.  A
    rollback that wrote nothing also drops the loaded collections whose children's table had an
    object touched."""
    return frame.__dict__.setdefault("touched", {})


def _refs(obj):
    return {name: value for name, value in obj.links.items() if name[0] == "ref"}


class RelObj(Obj):
    """An object record that also knows the other records (to tell which parents have no key)."""

    def __init__(self, table, values, objects, same=None):
        super().__init__(table, values, same)
        self.objects = objects
        self.took = ()  # marked for deletion: what that delete() did to children (see _take_back)

    def changed_fields(self):
        """As Obj, plus, for an object assigned since the last flush, foreign keys whose cached
        reference has no key yet: the flush fills them (or writes NULL, for a parent it does not
        insert; after that flush the column is no longer waiting for anything).  A parent whose key
        was given before its row exists (not generated) is no exception when the column already
        holds that key in its snapshot: the flush writes what the row has, so nothing changes."""
        changed = super().changed_fields()
        if self.state == PERSISTENT and not self.assigned:
            return changed
        for name, target in self.links.items():
            if name[0] == "ref" and target is not None and self.objects[target].key is None:
                known = self.objects[target].values.get("id")
                if known is not None and name[1] in self.snapshot and self.snapshot[name[1]] == known:
                    continue
                if name[1] not in changed:
                    changed.append(name[1])
        return changed


class RelationsModel(Model):
    """The base model plus relationships, cascades and key changes (see the module docstring)."""

    def __init__(self, schema, caps, rows, autoflush, relations):
        super().__init__(schema, caps, rows, autoflush=autoflush)
        self.relations = relations
        self._fills = None
        self._adding = False
        self._early = []

    def new_obj(self, table, values):
        return RelObj(table, values, self.objects, self.same)

    # -- looking at links -----------------------------------------------------------------

    def references_of(self, table):
        """Relations whose reference lives on ``table``, in declaration order."""
        return [rel for rel in self.relations if rel.child is table]

    def collections_of(self, table):
        """Relations whose collection lives on ``table``, in declaration order."""
        return [rel for rel in self.relations if rel.parent is table and rel.collection]

    def in_session(self, hid):
        return self.objects[hid].state in IN_SESSION

    def key_value(self, hid):
        """The value a foreign key to this object takes: its key column, or the key its identity
        records when that column is expired (None without a key)."""
        obj = self.objects[hid]
        if "id" in obj.values:
            return obj.values["id"]
        return obj.key[0] if obj.key is not None else None

    def points_at(self, hid, rel, parent):
        """Does this object point at ``parent`` now: by its cached reference, else by its column?"""
        obj = self.objects[hid]
        if rel.ref_link in obj.links:
            return obj.links[rel.ref_link] == parent
        owner = self.objects[parent]
        return owner.key is not None and obj.values.get(rel.column) == owner.key[0]

    def cascade(self, hid, name):
        """Objects one step from ``hid`` along relationships whose cascade includes ``name``:
        cached references (which cascade save-update only), then loaded collections."""
        obj = self.objects[hid]
        related = []
        if name == "save-update":
            for rel in self.references_of(obj.table):
                target = obj.links.get(rel.ref_link)
                if target is not None:
                    related.append(target)
        for rel in self.collections_of(obj.table):
            if name in rel.cascades:
                related.extend(obj.links.get(rel.list_link) or ())
        return related

    # -- setting a reference (both sides) -------------------------------------------------

    def _link(self, hid, rel, target):
        """Point the reference at ``target`` and keep loaded collections in step (no session)."""
        obj = self.objects[hid]
        old = obj.links.get(rel.ref_link)
        obj.links[rel.ref_link] = target
        if rel.collection:
            if old is not None and old != target:
                held = self.objects[old].links.get(rel.list_link)
                if held is not None and hid in held:
                    held.remove(hid)
            if target is not None:
                owner = self.objects[target]
                held = owner.links.get(rel.list_link)
                if held is None and owner.key is None:
                    held = owner.links[rel.list_link] = []  # nothing to load: start the list
                if held is not None and hid not in held:
                    held.append(hid)
        obj.values[rel.column] = None if target is None else self.key_value(target)

    def set_parent(self, hid, rel, target):
        """``child.ref = target``: in the session, a target not in it is added (save-update)."""
        self.cite("REL-1")
        obj = self.objects[hid]
        if obj.state in IN_SESSION:
            self._touch(hid)
            if target is not None and self.objects[target].state in (TRANSIENT, DETACHED):
                self.cite("REL-7")
                self.add(target)
            self._link(hid, rel, target)
            if obj.state == PERSISTENT:
                obj.assigned = True
        else:
            self._link(hid, rel, target)

    def set_field(self, hid, name, value):
        """Setting a foreign-key column by value forgets the reference cached for it."""
        if self.in_session(hid):
            self._touch(hid)
        super().set_field(hid, name, value)
        if self.objects[hid].links.pop(("ref", name), None) is not None:
            self.cite("REL-2")
        if name in self.objects[hid].table.key and self.objects[hid].state == PERSISTENT:
            self.cite("KEY-1")

    # -- reading --------------------------------------------------------------------------

    def get(self, table, key):
        """As the base; an expired held object whose key column was assigned since (a key change
        not flushed yet) is returned as it is: get() reloads a held object only when its key is
        among the expired fields."""
        found = self._found_in_session(table, key)
        if found is not None:
            return found
        hid = self.held(table, key)
        if hid is not None and all(column in self.objects[hid].values for column in table.key):
            self.cite("ID-2")
            if self._new_key(self.objects[hid]) != key:
                self.cite("KEY-1")
            return ("held", hid)
        return super().get(table, key)

    def read_parent(self, hid, rel):
        """Reading ``child.ref``: the cached object, else the object the column points at."""
        self.cite("REL-3")
        obj = self.objects[hid]
        if rel.ref_link in obj.links:
            return obj.links[rel.ref_link]
        if rel.column not in obj.values:
            if obj.state in (PERSISTENT, DELETED):
                self.situations.add("a reference read with its foreign key expired")
            self.read(hid)  # loads the expired column (or refuses, as reading it would)
        value = obj.values[rel.column]
        if value is None:
            return None
        if obj.state not in IN_SESSION:
            if obj.key is not None:
                raise Refused("detached", "reading a reference that is not loaded, with no session", rule="REL-3")
            return None
        outcome, target = self.get(rel.parent, (value,))
        if outcome == "none":
            return None
        if outcome == "loaded":
            self.situations.add("a reference loaded an object not held before")
        obj.links[rel.ref_link] = target
        return target

    def read_children(self, hid, rel):
        """Reading ``parent.list``: the loaded list, else load it (autoflush, then SELECT)."""
        self.cite("REL-4")
        obj = self.objects[hid]
        held = obj.links.get(rel.list_link)
        if held is not None:
            return held
        if obj.key is None:
            held = obj.links[rel.list_link] = []
            return held
        if obj.state not in IN_SESSION:
            raise Refused("detached", "reading a collection that is not loaded, with no session", rule="REL-4")
        if self.failed:
            raise Refused("pending_rollback", "loading a collection: a previous flush failed", rule="FAIL-2")
        self.autoflush()
        items = [child for child in self._select_children(hid, rel) if self.points_at(child, rel, hid)]
        # Without autoflush the rows may not show what is linked in memory yet.
        for child in self._unflushed(rel.child):
            if child not in items and self.points_at(child, rel, hid):
                self.situations.add("a collection loaded without autoflush holds unflushed children")
                items.append(child)
        for child in items:
            self.objects[child].links.setdefault(rel.ref_link, hid)
        if any(self.objects[child].state == PERSISTENT for child in items):
            self.situations.add("a collection loaded persistent children")
        obj.links[rel.list_link] = items
        return items

    def _select_children(self, hid, rel, situation="a collection loaded children that were not held"):
        """The objects for the rows whose foreign key holds ``hid``'s key (as last flushed), in key
        order: held ones get their expired fields filled; the others are loaded."""
        owner = self.objects[hid]
        found = []
        rows = self.db[rel.child.name]
        for key in sorted(rows):
            row = rows[key]
            if row[rel.column] != owner.key[0]:
                continue
            held = self.held(rel.child, key)
            if held is None:
                held = self._load_new(rel.child, key, row)
                self.situations.add(situation)
            else:
                child = self.objects[held]
                if len(child.values) < len(child.table.columns):
                    self._touch(held)  # filling expired fields touches it (before its reference is cached)
                    self._reload(child, row)
            found.append(held)
        return found

    def _unflushed(self, table):
        """Objects of ``table`` whose links the rows may not show yet: pending ones, then those
        assigned since the last flush, each in session order."""
        ordered = sorted(self.objects.items(), key=lambda item: item[1].seq)
        found = [hid for hid, obj in ordered if obj.state == PENDING and obj.table is table]
        found += [hid for hid, obj in ordered if obj.state == PERSISTENT and obj.assigned and obj.table is table]
        return found

    def _children_of(self, hid, rel):
        """Every object of the session pointing at ``hid`` through ``rel`` now: the rows that
        reference it (loaded if need be, no autoflush), pending and changed objects, and the
        loaded collection's items."""
        owner = self.objects[hid]
        candidates = []
        if owner.key is not None:
            candidates.extend(self._select_children(hid, rel, "a delete loaded children that were not held"))
        candidates.extend(self._unflushed(rel.child))
        candidates.extend(owner.links.get(rel.list_link) or ())
        children = []
        for child in candidates:
            if child not in children and self.in_session(child) and self.points_at(child, rel, hid):
                children.append(child)
        return children

    # -- collections ----------------------------------------------------------------------

    def append_child(self, hid, rel, child):
        """``parent.list.append(child)``: load the list, set the child's reference, and (parent
        in the session, save-update) add the child."""
        self.read_children(hid, rel)
        self.cite("REL-1")
        adopts = self.in_session(hid) and "save-update" in rel.cascades and not self.in_session(child)
        if adopts:
            self._would_add(child)  # refused before the list or the child changes
        self.set_parent(child, rel, hid)
        if adopts and not self.in_session(child):
            self.cite("REL-7")
            self.situations.add("append cascaded save-update to a new child")
            self.add(child)

    def remove_child(self, hid, rel, child):
        """``parent.list.remove(child)``: unlink it; with delete-orphan the child is deleted."""
        self.cite("REL-1")
        self.objects[hid].links[rel.list_link].remove(child)
        obj = self.objects[child]
        if obj.links.get(rel.ref_link) == hid or self.read_parent(child, rel) == hid:
            self.set_parent(child, rel, None)
        if self.in_session(hid) and "delete-orphan" in rel.cascades and self.in_session(child):
            self.cite("REL-9")
            self.situations.add("delete-orphan deleted a removed child")
            self.delete(child)

    # -- session operations along relationships --------------------------------------------

    def _saved(self):
        """What a refused call must leave as it was: every object, and what the frame noted."""
        frame = self.frames[-1]
        return {hid: obj.copy() for hid, obj in self.objects.items()}, dict(touched_in(frame)), dict(frame.entered)

    def _put_back(self, saved):
        objects, touched, entered = saved
        frame = self.frames[-1]
        self.objects.update(objects)
        touched_in(frame).clear()
        touched_in(frame).update(touched)
        frame.entered.clear()
        frame.entered.update(entered)

    def add(self, hid):
        """add(), then save-update along cached references and loaded collections (also for a
        re-added detached object).  A refusal anywhere along the cascade changes nothing."""
        if self._adding:
            return self._add_cascading(hid)
        saved = self._saved()
        self._adding = True
        try:
            self._add_cascading(hid)
        except Refused:
            self.cite("FAIL-5")
            self._put_back(saved)
            raise
        finally:
            self._adding = False

    def _would_add(self, hid):
        """Refused as add() would be, changing nothing either way."""
        saved = self._saved()
        try:
            self.add(hid)
        finally:
            self._put_back(saved)

    def _add_cascading(self, hid):
        obj = self.objects[hid]
        before = obj.state
        if before == PERSISTENT and obj.marked and self.caps.add_cancels_delete:
            self._take_back(hid)
        else:
            super().add(hid)
        if before in (TRANSIENT, DETACHED):
            self._touch(hid)
        if obj.state in (PENDING, PERSISTENT):
            for related in self.cascade(hid, "save-update"):
                if self.objects[related].state in (TRANSIENT, DETACHED):
                    self.cite("REL-7")
                    self.situations.add(f"add of a {before} object cascaded save-update")
                    self._add_cascading(related)

    def _take_back(self, hid):
        """add() of an object marked for deletion: it stays, and so does what its delete() took
        along (children it deleted or cancelled, children whose reference it cleared), unless they
        were changed since."""
        obj = self.objects[hid]
        self._touch(hid)
        obj.marked = False
        took, obj.took = obj.took, ()
        if took:
            self.cite("REL-11")
            self.situations.add("add() took back what a delete() did to children")
        for child, rel in took:
            other = self.objects[child]
            if rel is not None:
                if other.state in IN_SESSION and other.links.get(rel.ref_link) is None and \
                        other.values.get(rel.column) is None:
                    self.set_parent(child, rel, hid)
            elif other.state == PERSISTENT and other.marked:
                self._take_back(child)
            elif other.state == TRANSIENT:
                self._add_cascading(child)
                for parent_rel in self.references_of(other.table):
                    parent = other.links.get(parent_rel.ref_link)
                    held = self.objects[parent].links.get(parent_rel.list_link) if parent is not None else None
                    if held is not None and child not in held:
                        held.append(child)

    def delete(self, hid, depth=0):
        """delete(): a pending object also leaves its parents' loaded collections; a persistent one
        takes its children along (delete cascade) or unlinks them."""
        obj = self.objects[hid]
        if self._delete_does_nothing(obj):
            return
        if obj.state == DETACHED:
            self.add(hid)
        if obj.state == PENDING:
            super().delete(hid)
            self._touch(hid)
            if obj.state == TRANSIENT:
                if self.references_of(obj.table):
                    self.cite("REL-8")
                for rel in self.references_of(obj.table):
                    parent = obj.links.get(rel.ref_link)
                    held = self.objects[parent].links.get(rel.list_link) if parent is not None else None
                    if held is not None and hid in held:
                        held.remove(hid)
                self._expunge_cascade(hid)
            return
        if obj.state != PERSISTENT or obj.marked:
            super().delete(hid)
            return
        self._touch(hid)
        super().delete(hid)
        if self.collections_of(obj.table):
            self.cite("REL-8")
        took = []  # what add() would take back: (child, None) deleted, (child, relation) unlinked
        doomed = []
        for rel in self.collections_of(obj.table):
            if "delete" in rel.cascades:
                doomed.extend(self._children_of(hid, rel))
        for child in doomed:
            other = self.objects[child]
            if other.state == PENDING or not (other.state == PERSISTENT and other.marked):
                took.append((child, None))
            if other.state == PERSISTENT and not other.marked:
                self.situations.add("delete cascaded to a child")
                if depth:
                    self.situations.add("delete cascaded two levels deep or more")
            self.delete(child, depth + 1)
        for rel in self.collections_of(obj.table):
            if "delete" in rel.cascades:
                continue
            for child in self._children_of(hid, rel):
                if self.objects[child].marked:
                    continue
                self.situations.add("delete unlinked a child")
                self.set_parent(child, rel, None)
                took.append((child, rel))
        obj.took = tuple(took)

    def expunge(self, hid):
        """expunge() of an object marked for deletion first takes back what its delete() did (as
        add() does); then the expunge cascade."""
        obj = self.objects[hid]
        if obj.state == PERSISTENT and obj.marked:
            self._take_back(hid)
        super().expunge(hid)
        self._touch(hid)
        self._expunge_cascade(hid)

    def _expunge_cascade(self, hid):
        for related in self.cascade(hid, "expunge"):
            if self.in_session(related):
                self.cite("REL-10")
                self.situations.add("expunge cascaded")
                self.expunge(related)

    def expire(self, hid):
        super().expire(hid)
        self._touch(hid)
        self._forget_references(hid)

    def rollback(self):
        """The base rollback; an object it expires because a stale error named it forgets its
        cached references too, as expire() does."""
        stale = self.stale_hid
        super().rollback()
        if stale is not None and self.caps.rollback_expires_stale_object and self.objects[stale].state == PERSISTENT:
            self._forget_references(stale)

    def refresh(self, hid, fields=None, visited=None):
        """refresh(), then (of the whole object) the loaded collections' persistent objects
        (refresh cascade, each object once)."""
        super().refresh(hid, fields)
        self._touch(hid)
        self._forget_references(hid, fields)
        if fields is not None:
            return
        visited = visited if visited is not None else set()
        visited.add(hid)
        for related in self.cascade(hid, "refresh"):
            if related not in visited and self.objects[related].state == PERSISTENT:
                self.cite("REL-10")
                self.situations.add("refresh cascaded")
                self.refresh(related, None, visited)

    def expire_fields(self, hid, fields):
        super().expire_fields(hid, fields)
        self._touch(hid)
        self._forget_references(hid, fields)

    def expire_all(self):
        for hid in self.identity().values():
            self._touch(hid)
            self._forget_references(hid)
        super().expire_all()

    def expunge_all(self):
        """expunge_all(): deletes not flushed are taken back first (see expunge), then everyone leaves."""
        for hid in sorted(self.objects, key=lambda hid: self.objects[hid].seq):
            obj = self.objects[hid]
            if obj.state == PERSISTENT and obj.marked:
                self._take_back(hid)
        super().expunge_all()

    def _forget_references(self, hid, fields=None):
        """The references cached for these foreign-key columns (all, by default) are forgotten."""
        obj = self.objects[hid]
        for name in [name for name in obj.links if name[0] == "ref" and (fields is None or name[1] in fields)]:
            self.cite("REL-12")
            del obj.links[name]

    def _restore(self, frame):
        """The base rollback, then what it means for links (see the module docstring): each
        object's cached references are those it had when first touched in the frame (untouched:
        as they are), none for an object the rollback expires; loaded collections stay, unless
        the frame wrote or touched an object of the children's table."""
        for hid, before in frame.objects.items():
            if before.key is not None and hid in self.objects and self.objects[hid].key not in (None, before.key):
                self.cite("KEY-3")
                self.situations.add("a rollback restored a changed primary key")
        touched = touched_in(frame)
        refs = {hid: touched[hid] if hid in touched else _refs(obj) for hid, obj in self.objects.items()}
        lists = {hid: {name: value for name, value in obj.links.items() if name[0] == "list"}
                 for hid, obj in self.objects.items()}
        tables = {self.objects[hid].table.name for hid in touched}
        if self.relations:
            self.cite("REL-13")
        super()._restore(frame)
        for hid in touched:
            self.objects[hid].took = ()  # a restored mark forgets what its delete() did
        for hid, obj in self.objects.items():
            look = frame.entered.get(hid)
            loaded_here = look is not None and look.state == PERSISTENT
            expired = loaded_here and not obj.values  # read after a write: its references reload too
            obj.links = {} if expired else dict(refs[hid])
            held = obj.state in (PERSISTENT, PENDING) or (obj.state == DETACHED and loaded_here)
            for name, items in lists[hid].items():
                if held and (frame.wrote is not None or name[1] in tables):
                    self.situations.add("a rollback dropped a loaded collection")
                    continue
                obj.links[name] = items

    def _touch(self, hid, refs=None):
        """The object is touched in the innermost frame (see touched_in); call before changing its
        references, or give the ones it had."""
        touched_in(self.frames[-1]).setdefault(hid, refs if refs is not None else _refs(self.objects[hid]))

    def touch_changed(self, before):
        """Touch every object of the session whose look differs from ``before`` (``looks()`` taken
        earlier).  (Objects outside the session change without the session knowing.)"""
        for hid, look in self.looks().items():
            # (Caching a reference that was read is not a touch: only the rest of the look counts.)
            if hid in before and before[hid][:-1] != look[:-1] and \
                    (look[0] in IN_SESSION or before[hid][0] in IN_SESSION):
                self._touch(hid, dict(before[hid][-1]))

    def looks(self):
        """What a rollback would have to put back, per object, to compare before and after."""
        return {hid: (obj.state, obj.key, tuple(sorted(obj.values.items(), key=repr)),
                      tuple(sorted(obj.snapshot.items(), key=repr)), obj.marked,
                      tuple(sorted(_refs(obj).items(), key=repr)))
                for hid, obj in self.objects.items()}

    def release(self):
        """The released savepoint's touches join the enclosing frame's (whose older ones win)."""
        touched = dict(touched_in(self.frames[-1]))
        super().release()
        for hid, refs in touched.items():
            touched_in(self.frames[-1]).setdefault(hid, refs)

    # -- flush: keys from the same flush, and key changes ---------------------------------

    def _sources(self, statements):
        """``{(hid, column): parent hid}``: foreign keys the flush fills from a key it generates."""
        inserting = {hid for verb, hid in statements if verb == "INSERT"}
        inserting |= {hid for verb, hid in statements if verb == "UPDATE" and self._rekeys(hid)}
        sources = {}
        for verb, hid in statements:
            if verb == "DELETE":
                continue
            obj = self.objects[hid]
            written = obj.table.columns if verb != "UPDATE" else obj.changed_fields()
            for rel in self.references_of(obj.table):
                target = obj.links.get(rel.ref_link)
                if target is not None and target in inserting and rel.column in written:
                    sources[(hid, rel.column)] = target
        return sources

    def _rekeys(self, hid):
        obj = self.objects[hid]
        return obj.key is not None and self._new_key(obj) != obj.key

    def _more_prerequisites(self, actions, before):
        """A row whose foreign key the flush fills from a parent's new key waits for the parent's
        INSERT (or key-changing UPDATE)."""
        inserts = {hid: action for action in actions for verb, hid in [action]
                   if verb == "INSERT" or (verb == "UPDATE" and self._rekeys(hid))}
        writes = {hid: action for action in actions for verb, hid in [action] if verb != "DELETE"}
        for (hid, _), parent in self._sources(actions).items():
            if inserts[parent] is not writes[hid]:
                before[writes[hid]].add(inserts[parent])

    def _complete_rows(self, trial, statements, keys):
        """Fill foreign keys from the keys this flush generated (the rows are all in by now).

        A foreign key set by value to a key SQLite generates only in this flush (a key it hands
        out again) could not be ordered after that INSERT: its statement ran first and failed.
        A row naming the key SQLite gives that very row passes: SQLite checks the foreign key
        when the statement ends, with the row in."""
        for verb, hid, table_name, value in self._early:
            for other, (key, _) in keys.items():
                if other != hid and self.objects[other].table.name == table_name and key == (value,) and \
                        self.objects[other].values.get("id") is None:
                    self.situations.add("a foreign key named a key SQLite generated later in the flush")
                    return Refused("flush", f"{verb} {self.objects[hid]!r}: {table_name} row {value} did not exist "
                                            f"yet (SQLite generated that key later in the flush)", rule="REL-6")
        self._fills = {}
        position = {hid: index for index, (_, hid) in enumerate(statements)}
        for (hid, column), parent in self._sources(statements).items():
            if position[parent] >= position[hid]:
                # SQLite could not check it when the row went in: completed by a later UPDATE.
                self.situations.add("a foreign key completed after its row was written (a cycle)")
            value = keys[parent][0][0] if parent in keys else self._new_key(self.objects[parent])[0]
            obj = self.objects[hid]
            key = keys[hid][0] if hid in keys else self._new_key(obj)
            trial[obj.table.name][key][column] = value
            self._fills[(hid, column)] = value
            self.cite("REL-5")
            self.situations.add("a foreign key filled from a key generated in the same flush")

    def _apply(self, trial, statement, keys, doomed):
        """An UPDATE that changes the key moves the row, and SQLite re-points its referencing rows.

        (Foreign keys set by value to a row missing when the statement runs are noted for
        ``_complete_rows``.)"""
        verb, hid = statement
        obj = self.objects[hid]
        if verb != "DELETE":
            written = obj.table.columns if verb != "UPDATE" else obj.changed_fields()
            waiting = {rel.column for rel in self.references_of(obj.table) if obj.links.get(rel.ref_link) is not None}
            for column, parent in obj.table.refs:
                value = obj.values.get(column)
                if column in written and column not in waiting and value is not None and (value,) not in trial[parent]:
                    self._early.append((verb, hid, parent, value))
        if verb != "UPDATE" or obj.key is None or obj.key not in trial[obj.table.name]:
            return super()._apply(trial, statement, keys, doomed)
        new_key = self._new_key(obj)
        if new_key == obj.key:
            return super()._apply(trial, statement, keys, doomed)
        rows = trial[obj.table.name]
        if new_key in rows:
            return Refused("flush", f"UPDATE {obj!r}: key {new_key} exists", rule="KEY-1")
        row = dict(rows.pop(obj.key))
        for name in obj.changed_fields():
            row[name] = obj.values[name]
        rows[new_key] = row
        for child, column in self.schema.children(obj.table.name):
            for child_row in trial[child.name].values():
                if child_row[column] == obj.key[0]:
                    child_row[column] = new_key[0]
                    self.cite("KEY-2")
                    self.situations.add("a key change re-pointed referencing rows")
        self.cite("KEY-1")
        self.situations.add("a flush changed a " + ("composite" if len(obj.key) > 1 else "natural") + " primary key")
        return self._check_statement(trial, obj.table, row)

    def _related(self, hid):
        """Whether relationships take part in a row switch of this object: it caches a parent or
        holds a loaded, non-empty collection, or another object caches it as its parent."""
        obj = self.objects[hid]
        if any(value is not None and value != [] for value in obj.links.values()):
            return True
        return any(other.links.get(rel.ref_link) == hid for other in self.objects.values()
                   for rel in self.references_of(other.table) if rel.parent is obj.table)

    def _new_key(self, obj):
        """The key an object's row has once its UPDATE ran (its values' key; an expired key
        column has not changed)."""
        if obj.key is None:
            return obj.table.key_of(obj.values)
        return obj.table.key_of({**dict(zip(obj.table.key, obj.key)), **obj.values})

    def flush(self):
        """The base flush, then what it leaves on objects: filled foreign keys, new keys."""
        rekeyed = []
        for hid, obj in self.objects.items():
            if obj.state == PERSISTENT and not obj.marked and obj.key is not None:
                new_key = self._new_key(obj)
                if new_key != obj.key:
                    rekeyed.append((hid, obj.key, new_key))
        switches = self._switches()
        self._fills = None
        self._early = []
        before = self.looks()
        super().flush()
        self.touch_changed(before)
        fills, self._fills = self._fills, None
        if fills is None:
            return
        for new, old in switches.items():
            self.situations.add("a row switch")
            if self._related(old) or self._related(new):
                self.cite("ORD-4")
            self.situations.add("a row switch of an object with relationships")
            # Children that cached the deleted object now belong to the row's new object.
            for rel in self.collections_of(self.objects[old].table):
                for child in self.objects[old].links.get(rel.list_link) or ():
                    if self.objects[child].links.get(rel.ref_link) == old:
                        self.objects[child].links[rel.ref_link] = new
        for (hid, column), value in fills.items():
            obj = self.objects[hid]
            obj.values[column] = value
            obj.snapshot[column] = value
        for hid, old_key, new_key in rekeyed:
            self.objects[hid].key = new_key
            for other in self.objects.values():
                if other.state != PERSISTENT:
                    continue
                for column, parent in other.table.refs:
                    if parent == self.objects[hid].table.name and other.values.get(column, None) == old_key[0] \
                            and column in other.values:
                        other.values[column] = new_key[0]
                        other.snapshot[column] = new_key[0]
                        self.cite("KEY-2")
                        self.situations.add("a key change re-pointed loaded objects")
