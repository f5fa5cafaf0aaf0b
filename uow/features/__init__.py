"""Features layered on the core session: each a part of its own, which the core never imports.

The core (``session`` and what it composes: the identity map, change tracking, the flush and its
planner, exact rollback, transactions, loading and cascades) is the Unit of Work pattern itself,
and reads without any of this.  The session users import, ``uow.Session``, is the core session
with these parts added, each given the session it works for:

=================  ======================================================================
``eager``          load a relationship of many objects with one SELECT (``load=``)
``merging``        objects from elsewhere: merge, upsert, update, save_or_update, mark_dirty
``bulk``           many rows per statement, outside the unit of work
``databases``      raw SQL, and several SQLite files attached to one connection
``events``         listeners called before and after each flush, transaction and savepoint
=================  ======================================================================

The methods below only check the session and hand over to the part: read the part's module for
how each works.
"""

from .. import session as core
from ..arguments import listed
from ..mapping import mapper_of_class, mapper_of_object
from .bulk import BulkWriter
from .databases import Databases
from .eager import EagerLoader
from .events import Listeners, SessionEvents
from .merging import Merger


class Session(core.Session):
    """A unit of work over one sqlite3 connection, with every feature (see :class:`uow.session.Session`
    for the core, and the module docstring for the parts)."""

    listeners = Listeners()  # listeners of every session; see features.events

    def __init__(self, connection, **options):
        super().__init__(connection, **options)
        self.listeners = Listeners()  # this session's own
        self.observer = SessionEvents(self)
        self.eager = EagerLoader(self)
        self.merger = Merger(self)
        self.bulk = BulkWriter(self)
        self.databases = Databases(self)

    # -- eager loading --------------------------------------------------------------------

    def all(self, entity, *, load=()):
        """Every row of the entity's table, as objects, ordered by primary key."""
        self._check("all")
        return self.filter(entity, load=load)

    def filter(self, entity, *, order_by=None, limit=None, load=(), **equals):
        """Objects whose columns equal the given values, ordered and limited::

            session.filter(User, name="ann")
            session.filter(User, active=True, order_by="-score", limit=10)

        ``order_by`` is a field name (``"-name"`` for descending) or a list of them; the default
        is the primary key.  ``None`` matches NULL.  Results go through the identity map.
        ``load`` names relationships to load up front, one SELECT each (see :meth:`load_related`).
        """
        self._check("filter")
        mapper = mapper_of_class(entity, "filter")
        relationships = [self.eager.relationship(mapper, name) for name in listed(load, "filter", "load")]
        objects = self.loader.filter(mapper, order_by, limit, equals)
        for relationship in relationships:
            self.eager.load(objects, relationship)
        return objects

    def load_related(self, objects, name):
        """Load relationship ``name`` of every object in ``objects`` with one SELECT (per batch of keys).

        Objects whose relationship is already loaded are left alone.  This is what
        ``filter(..., load=[name])`` does after its query.
        """
        self._check("load_related")
        objects = listed(objects, "load_related", "objects")
        if objects:
            mapper = mapper_of_object(objects[0], "load_related")
            self.eager.load(objects, self.eager.relationship(mapper, name))

    # -- objects from elsewhere -----------------------------------------------------------

    def merge(self, obj, *, load=True):
        """Copy ``obj``'s column values onto this session's object for the same row, and return it
        (see ``features.merging``)."""
        return self.merger.merge(obj, load=load)

    def upsert(self, obj):
        """Insert the row, or update it if its key exists, in one statement; return the session's
        object (see ``features.merging``)."""
        return self.merger.upsert(obj)

    def update(self, obj):
        """Attach a detached object: it becomes persistent, and its changes are flushed next time."""
        self.merger.update(obj)

    def save_or_update(self, obj):
        """add() a transient object, update() a detached one; objects already here are left alone."""
        self.merger.save_or_update(obj)

    def mark_dirty(self, obj):
        """Make the next flush write every column of ``obj`` (for changes uow cannot see)."""
        self.merger.mark_dirty(obj)

    # -- bulk writes ----------------------------------------------------------------------

    def bulk_insert_mappings(self, entity, mappings):
        """Insert one row per dict of column values; returns the number of rows inserted (see
        ``features.bulk``)."""
        return self.bulk.bulk_insert_mappings(entity, mappings)

    def bulk_update_mappings(self, entity, mappings):
        """Update rows by primary key: each dict holds the key and the columns to set."""
        return self.bulk.bulk_update_mappings(entity, mappings)

    def bulk_save_objects(self, objects):
        """Insert transient objects and update detached ones, in batches, without adding them."""
        self.bulk.bulk_save_objects(objects)

    # -- raw SQL and attached databases ---------------------------------------------------

    def execute(self, sql, params=()):
        """Run one SQL statement in the session's transaction (after an autoflush); return the cursor."""
        return self.databases.execute(sql, params)

    def scalar(self, sql, params=()):
        """The first column of the first row of a query, or None when it returns no row."""
        return self.databases.scalar(sql, params)

    def scalars(self, sql, params=()):
        """The first column of every row of a query, as a list."""
        return self.databases.scalars(sql, params)

    def connection(self):
        """The session's sqlite3 connection, with its transaction begun (after an autoflush)."""
        return self.databases.connection()

    def attach(self, name, path):
        """ATTACH the SQLite file ``path`` to the connection as database ``name``."""
        self.databases.attach(name, path)

    def bind_mapper(self, entity, path):
        """Attach the file that holds ``entity``'s table, under the database name the class declares."""
        self.databases.bind_mapper(entity, path)

    def bind_table(self, table, path, registry=None):
        """bind_mapper() for the entity whose table is ``table`` (looked up in ``registry``)."""
        self.databases.bind_table(table, path, registry)

    def get_bind(self, entity):
        """The path of the file that holds ``entity``'s table ('' for an in-memory database)."""
        return self.databases.get_bind(entity)
