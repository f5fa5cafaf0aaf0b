"""Eager loading: a relationship of many objects loaded with one SELECT, instead of one per object.

:class:`EagerLoader` is a feature part the session composes (``features``).  Lazy loading
(``loading``) reads ``order.user`` or ``user.orders`` on first access, one SELECT per object;
for a list of objects that is the "N+1 queries" problem.  ``load_related(objects, "orders")``
and ``filter(..., load=["orders"])`` load the relationship of the whole list up front: one
``SELECT ... WHERE key IN (...)`` per relationship (per batch of keys, within SQLite's limit on
bound variables), every row going through the identity map as any load does.
"""

from typing import Any

from ..errors import UnknownFieldError
from ..loading import points_at
from ..identifiers import quote
from ..collection import Collection, RelatedList
from ..relationships import Reference
from ..states import STATE_ATTRIBUTE


class EagerLoader:
    """The session's part for loading relationships up front (see the module docstring)."""

    def __init__(self, session):
        self.session = session

    def relationship(self, mapper, name):
        """The relationship ``name`` names on ``mapper``'s class (a name, or the relationship itself,
        such as ``Shelf.books``, which must be one of this class's); refused with the class's list."""
        relationship = getattr(mapper.cls, name, None) if isinstance(name, str) else name
        if not isinstance(relationship, (Reference, Collection)) or relationship.entity is not mapper.cls:
            names = [r.name for r in mapper.references] + [c.name for c in mapper.collections]
            raise UnknownFieldError(
                f"{mapper.cls.__name__} has no relationship {name!r} to load; its relationships are "
                f"{', '.join(names) or '(none)'}"
            )
        if isinstance(relationship, Collection):
            relationship.configure()
        return relationship

    def load(self, objects, relationships):
        """Load each of ``relationships`` for a whole list of objects: one SELECT ... WHERE key IN (...)
        per relationship (chunked to SQLite's limit).  Objects whose relationship is already loaded
        are left alone.

        Every SELECT runs before any object is given a relationship: a read that fails (a lock held
        past the busy timeout, an interrupt, Ctrl-C) leaves no relationship loaded, not the first ones.
        """
        fills = [self._read(objects, relationship) for relationship in relationships]
        for fill in fills:
            fill()

    def _read(self, objects, relationship):
        """Run the SELECTs that load ``relationship`` for ``objects``; return what then fills it in."""
        identity = self.session.identity
        if isinstance(relationship, Reference):
            target = relationship.target.__mapper__
            wanted = []
            for obj in objects:
                values = obj.__dict__
                if relationship.name in values:
                    continue
                key_values = [values.get(name) for name in relationship.column_names]
                key = relationship.foreign_key.target_key(key_values)
                if None not in key_values and identity.get(target.cls, key) is None:
                    wanted.append(target.key_params(key))
            self._select_in(target, target.pk_names, sorted(set(wanted), key=repr))

            def fill_references():
                for obj in objects:
                    if relationship.name not in obj.__dict__:
                        key_values = [obj.__dict__.get(name) for name in relationship.column_names]
                        held = identity.get(target.cls, relationship.foreign_key.target_key(key_values))
                        if held is not None:
                            obj.__dict__[relationship.name] = held
            return fill_references
        reference = relationship.reference
        child = relationship.target.__mapper__
        parents = [obj for obj in objects if relationship.name not in obj.__dict__
                   and obj.__dict__[STATE_ATTRIBUTE].key is not None]
        states = [obj.__dict__[STATE_ATTRIBUTE] for obj in parents]
        keys = [state.key for state in states]
        children = self._select_in(child, reference.column_names, [state.mapper.key_params(state.key) for state in states])

        def fill_collections():
            by_parent: dict[Any, list[Any]] = {}  # {parent's key: its children}
            for item in children:
                key = reference.foreign_key.target_key([item.__dict__.get(name) for name in reference.column_names])
                by_parent.setdefault(key, []).append(item)
            for obj, key in zip(parents, keys):
                if relationship.name in obj.__dict__:
                    continue  # (load=[...] named it twice: filled already)
                items = [item for item in by_parent.get(key, []) if points_at(item, reference, obj)]
                for item in items:
                    item.__dict__.setdefault(reference.name, obj)
                obj.__dict__[relationship.name] = RelatedList(obj, relationship, items)
        return fill_collections

    def _select_in(self, mapper, names, keys):
        """Load the rows of ``mapper`` whose ``names`` columns hold one of ``keys`` (stored forms, as a
        key holds them: see ``Mapper.key_for``)."""
        if not keys:
            return []
        loader = self.session.loader
        chunk = max(1, self.session.executor.variable_limit() // len(names))
        table = mapper.quoted_table
        objects = []
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            if len(names) == 1:
                where = f"{table}.{quote(names[0])} IN ({', '.join('?' * len(part))})"
                params = [key[0] for key in part]
            else:
                row = "(" + ", ".join("?" * len(names)) + ")"
                where = f"({', '.join(f'{table}.{quote(n)}' for n in names)}) IN (VALUES {', '.join([row] * len(part))})"
                params = [value for key in part for value in key]
            order = mapper.key_order
            objects.extend(loader.load(mapper, loader.query(
                mapper, f"SELECT {mapper.select_list} FROM {table} WHERE {where} ORDER BY {order}", params,
                "load_related()")))
        return objects
