"""The Entity base class: what every mapped class inherits.

::

    class User(Entity, table="users"):
        id: int = Column(primary_key=True)
        name: str

Declaring the class builds its :class:`~uow.mapper.Mapper` (the table, columns and keys, see
``declaration``).  Objects get a keyword-only constructor like a dataclass's, a short repr, and the
two hooks that are all the instrumentation columns need: ``__setattr__`` tells the object's
session that a column was assigned, and each Column is a descriptor that reloads an expired value
when it is read (see ``columns.Column``); References and Collections are descriptors of their own
(see ``relationships``).  Equality is identity, as for any object: two objects are "the same row"
only when the identity map made them one object.

Type checkers read the class as a dataclass (PEP 681's ``dataclass_transform``): they accept
``id: int = Column(primary_key=True)``, take each annotated attribute as a keyword of the
constructor (one with a value after ``=`` may be left out), and check ``User(id=1, name="a")``
against the annotations.  At run time the decorator only marks the class; the Mapper decides
what the constructor requires (a generated key, say, never is).
"""

import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidStateError, MappingError, MissingFieldError, UnknownFieldError
from .columns import Column, ForeignKey
from .declaration import Registry
from .mapper import Mapper
from .relationships import Relationship
from .states import STATE_ATTRIBUTE


@typing.dataclass_transform(kw_only_default=True)
class Entity:
    """Base class of mapped classes; see the module docstring for how to declare one.

    ``abstract=True`` declares a base that maps no table and starts a registry of its own, so
    that separate models can each have their own ``User`` (see ``declaration.Registry``).
    """

    __registry__ = Registry()
    __mapper__: typing.ClassVar[Mapper]

    def __init_subclass__(cls, *, table: str | None = None, abstract: bool = False,
                          foreign_keys: Sequence[ForeignKey] = (), database: str = "main", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            if table is not None:
                raise MappingError(f"{cls.__name__}: an abstract base has no table")
            declared = [name for name, value in vars(cls).items()
                        if isinstance(value, (Column, Relationship))]
            declared += [name for name in vars(cls).get("__annotations__", {}) if not name.startswith("_")]
            if declared:
                # uow maps one class to one table and reads a class's own declarations only:
                # columns here would be silently missing from every entity below.
                raise MappingError(
                    f"{cls.__name__} is an abstract base, which groups entities in a registry and declares "
                    f"no columns or relationships; move {', '.join(sorted(set(declared)))} to the entities"
                )
            cls.__registry__ = Registry()
            return
        mapped = [base for base in cls.__mro__[1:] if "__mapper__" in vars(base)]
        if mapped:
            raise MappingError(
                f"{cls.__name__} inherits from the mapped class {mapped[0].__name__}; uow maps one "
                f"class to one table, so declare {cls.__name__} from Entity (or an abstract base) instead"
            )
        if table is None:
            raise MappingError(
                f"{cls.__name__} needs a table name: class {cls.__name__}(Entity, table='...'); "
                f"or declare it abstract=True to make a base for other entities"
            )
        cls.__mapper__ = Mapper(cls, table, foreign_keys, database)
        cls.__mapper__.bind_relationships()
        cls.__registry__.register(cls)
        _share_attribute_names(cls, cls.__mapper__)

    def __init__(self, **values: Any) -> None:
        mapper = type(self).__mapper__
        related = None
        # The fast path: the commonest call names exactly the columns the constructor requires,
        # which one comparison of key sets checks.  Any other call is checked keyword by keyword.
        if values.keys() != mapper.required:
            related = _checked_keywords(type(self), mapper, values)
        namespace = self.__dict__
        write_values(namespace, mapper.constant_defaults, values)
        for name, factory in mapper.default_factories:
            if name not in values:
                namespace[name] = factory()
        if related:
            # Straight to each relationship's descriptor: the object is in no session yet, so
            # Entity.__setattr__ would only pass the value on to it.
            for relationship, value in related:
                relationship.__set__(self, value)

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is not None:
            state.session.hooks.attribute_set(state, name, value)
            return
        references = type(self).__mapper__.references_by_column.get(name)
        if references:
            # A foreign-key column set by hand: the cached referenced object may no longer match.
            for reference in references:
                self.__dict__.pop(reference.name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        state = self.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is not None and name in type(self).__mapper__.init_names:
            raise InvalidStateError(
                f"cannot delete attribute {name!r} of {state.describe()}: the session tracks it; "
                f"use session.expire(obj, [{name!r}]) to reload it, or set it to None"
            )
        object.__delattr__(self, name)

    def __repr__(self) -> str:
        mapper = type(self).__mapper__
        namespace = self.__dict__
        state = namespace.get(STATE_ATTRIBUTE)
        parts = []
        for name in mapper.column_names:
            if name not in namespace and state is not None and state.key is not None and name in mapper.pk_names:
                # An expired key column: the identity key still knows its value.
                parts.append(f"{name}={mapper.key_values(state.key)[mapper.pk_names.index(name)]!r}")
            elif name in namespace:
                value = namespace[name]
                text = repr(value)
                if len(text) > 24:
                    text = text[:21] + "..."
                parts.append(f"{name}={text}")
        status = state.status.value if state is not None else "transient"
        return f"{type(self).__name__}({', '.join(parts)})<{status}>"


def write_values(namespace: dict[str, Any], *sources: Mapping[str, Any]) -> None:
    """Write each mapping of ``sources`` into a new object's instance dict, in order (a later one
    wins), one name at a time: never as ``namespace.update(values)``.

    Why: CPython keeps a class's attribute names in one key table its instances share, and an
    instance whose names are all in it stores only its values (PEP 412).  Merging a dict into an
    *empty* instance dict takes a shortcut on CPython 3.11 and 3.12: it copies the other dict's
    own key table, so the new object carries a full dict of its own (+128-136 bytes), and the
    class's table learns none of its names.  Before classes were taught their names when declared
    (:func:`_share_attribute_names`), that also made every object loaded after about 30
    constructed ones carry a full dict (bench: 605 -> 733 B per loaded User).  Setting item by
    item keeps the shared table.  (A loop, not ``update(values.items())``: that takes CPython's
    sequence-of-pairs path, twice as slow; and one call for the constructor's defaults and values:
    construct 0.97x against two calls, bench/compare.py.)

    A dict that already holds values merges key by key on every version, so ``update()`` of a
    held object's dict (the flush's apply step, merge onto a held object) keeps its layout.
    """
    for values in sources:
        for name, value in values.items():
            namespace[name] = value


def _share_attribute_names(cls: type, mapper: Mapper) -> None:
    """Teach CPython every name an object of ``cls`` can hold, before any object of it exists.

    Why: the class's shared key table (see :func:`write_values`) stops taking new names once
    about 30 instances exist, and an instance that then gets a name the table lacks moves to a
    full dict of its own.  Names that arrive late are the rule here: a cached reference
    (``child.parent``) is stored when first read, a collection when first loaded.  Loading
    20,000 rows of a class with two references and reading both cost +344 B per object on 3.11
    and +400 B on 3.13 before this.  One throwaway object, given every name once (the columns,
    the session's state record, then the relationships), fills the table for every object to
    come; names beyond CPython's limit of 30 stay per object, as before.
    """
    names = mapper.column_names + (STATE_ATTRIBUTE,) + tuple(
        relationship.name for relationship in mapper.references + mapper.collections)
    specimen: object = object.__new__(cls)  # (no __init__: it runs no user code and joins no session)
    write_values(specimen.__dict__, dict.fromkeys(names))


def _checked_keywords(cls: type, mapper: Mapper, values: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    """The general path of ``Entity.__init__``'s keyword check: refuse an unknown keyword or a
    missing required column; take the relationships out of ``values`` and return them as
    ``[(relationship, value)]`` in the caller's order (None if there are none), to be set once the
    columns are in place.  (A function, not a method: every entity class's namespace is the user's.)"""
    related = None
    if not mapper.init_names.issuperset(values):
        # Relationships (user=ann, orders=[...]) are set once the columns are in place.
        relationships = mapper.relationships_by_name
        related = [(relationships[name], values.pop(name)) for name in list(values) if name in relationships]
        if not mapper.init_names.issuperset(values):
            unknown = sorted(set(values) - mapper.init_names)
            accepted = mapper.column_names + tuple(r.name for r in mapper.references + mapper.collections)
            raise UnknownFieldError(
                f"{cls.__name__}() got unknown field(s) {', '.join(unknown)}; "
                f"its fields are {', '.join(accepted)}"
            )
    # (A Reference's key columns are never required: the reference may fill them.)
    missing = mapper.required.difference(values)
    if missing:
        raise MissingFieldError(
            f"{cls.__name__}() needs a value for {', '.join(sorted(missing))} "
            f"(NOT NULL, with no default)"
        )
    return related
