"""How objects lay out their attributes: every object of a class shares its class's key table.

White-box tests (house rule 11) of ``entity.write_values`` and ``entity._share_attribute_names``.
CPython stores an object's attributes compactly (its values only) while every name it holds is
in the key table its class shares (PEP 412); otherwise the object carries a full dict of its own,
128-400 bytes more.  What an object's class went through before it was made must not change
that: constructing objects first, merging, reading references after a load.  No clock and no
byte count: whether an instance dict shares its class's table is read from ``sys.getsizeof``,
which leaves the shared table out.
"""

import sys

import uow
from uow import Column, Entity, Reference


def shares_class_keys(obj):
    """Whether ``obj`` keeps only its values, not a key table of its own: a dict with the same
    contents that owns its table is larger."""
    return sys.getsizeof(obj.__dict__) < sys.getsizeof(dict(obj.__dict__))


def declare_models():
    """Fresh classes for each test: what a class went through earlier is what these tests vary."""

    class Base(Entity, abstract=True):
        pass

    class Owner(Base, table="owners"):
        id: int = Column(primary_key=True)
        name: str

    class Shop(Base, table="shops"):
        id: int = Column(primary_key=True)
        name: str

    class Item(Base, table="items"):
        id: int = Column(primary_key=True)
        owner_id: int = Column(references=Owner)
        shop_id: int = Column(references=Shop)
        owner = Reference("owner_id")
        shop = Reference("shop_id")
        name: str
        price: float = 0.0

    return Owner, Shop, Item


def fill(conn, items):
    conn.execute("BEGIN")
    conn.execute("INSERT INTO owners (id, name) VALUES (1, 'ann')")
    conn.execute("INSERT INTO shops (id, name) VALUES (1, 'corner')")
    conn.executemany("INSERT INTO items (owner_id, shop_id, name, price) VALUES (1, 1, ?, 0.5)",
                     [(f"item{i}",) for i in range(items)])
    conn.execute("COMMIT")


def test_wb_objects_loaded_after_constructed_ones_share_their_class_key_table(conn):
    # A program that makes objects before it loads any (the benchmark's insert, then load): on
    # CPython 3.11 and 3.12 the constructor's dict merge left the class's table empty, and every
    # object loaded later carried a full dict (605 -> 733 bytes per loaded object).
    Owner, Shop, Item = declare_models()
    uow.create_all(conn, [Owner, Shop, Item])
    fill(conn, 0)
    session = uow.Session(conn)
    made = [Item(owner_id=1, shop_id=1, name=f"new{i}") for i in range(100)]  # the key is generated
    assert all(shares_class_keys(item) for item in made)
    session.add_all(made)
    session.commit()
    assert all(shares_class_keys(item) for item in made)
    session.close()
    assert conn.execute("SELECT count(*), min(id), max(id) FROM items").fetchone() == (100, 1, 100)

    loaded = uow.Session(conn).all(Item)
    assert [item.name for item in loaded] == [f"new{i}" for i in range(100)]
    assert all(shares_class_keys(item) for item in loaded)


def test_wb_references_read_after_a_load_keep_the_objects_compact(conn):
    # A reference is cached in the object when first read, long after CPython stopped adding
    # names to the class's table (about 30 objects): two references read after loading cost
    # +344 bytes per object on 3.11 and +400 on 3.13 before the class was taught its names.
    Owner, Shop, Item = declare_models()
    uow.create_all(conn, [Owner, Shop, Item])
    fill(conn, 100)
    session = uow.Session(conn)
    items = session.all(Item)
    assert all(shares_class_keys(item) for item in items)
    assert {(item.owner.name, item.shop.name) for item in items} == {("ann", "corner")}
    assert all({"owner", "shop"} <= item.__dict__.keys() for item in items)  # cached, as this test means
    assert all(shares_class_keys(item) for item in items)


def test_wb_objects_merge_makes_share_their_class_key_table(conn):
    # merge() makes the session's object itself when it holds none for the row; with load=False
    # it merged a dict into the new object's empty dict, which gave each one a full dict.
    Owner, Shop, Item = declare_models()
    uow.create_all(conn, [Owner, Shop, Item])
    fill(conn, 50)
    session = uow.Session(conn)
    copies = [Item(id=i, owner_id=1, shop_id=1, name=f"item{i - 1}") for i in range(1, 51)]
    merged = [session.merge(copy, load=False) for copy in copies]
    assert [item.id for item in merged] == list(range(1, 51))
    assert all(item is not copy for item, copy in zip(merged, copies))
    assert all(shares_class_keys(item) for item in merged)
    new = [session.merge(Item(id=100 + i, owner_id=1, shop_id=1, name=f"more{i}")) for i in range(50)]
    assert all(shares_class_keys(item) for item in new)
    session.commit()
    session.close()
    assert conn.execute("SELECT count(*) FROM items WHERE id >= 100").fetchone() == (50,)


def test_wb_objects_stay_compact_through_flush_rollback_expiry_and_merge(conn):
    # The session writes into held objects' dicts all the time (a flush's new values and keys, a
    # rollback putting values back, a reload after expire(), merge onto a held object): none of
    # those may move an object to a full dict of its own.
    Owner, Shop, Item = declare_models()
    uow.create_all(conn, [Owner, Shop, Item])
    fill(conn, 60)
    session = uow.Session(conn)
    items = session.all(Item)
    for item in items:
        item.price += 1
    session.flush()
    assert all(shares_class_keys(item) for item in items)
    session.rollback()
    assert {item.price for item in items} == {0.5}
    assert all(shares_class_keys(item) for item in items)
    for item in items:
        session.expire(item)
    assert {item.name for item in items} == {f"item{i}" for i in range(60)}
    assert all(shares_class_keys(item) for item in items)
    savepoint = session.begin_nested()
    for item in items[:30]:
        session.delete(item)
    for item in items[30:]:
        item.name = "renamed"
    session.flush()
    savepoint.rollback()
    assert all(shares_class_keys(item) for item in items)
    made = [Item(owner_id=1, shop_id=1, name=f"new{i}") for i in range(40)]
    session.add_all(made)
    session.flush()
    session.rollback()  # the new objects are transient again, their generated keys taken back
    assert all(shares_class_keys(item) for item in made)
    session.add_all(made)
    merged = session.merge(Item(id=1, owner_id=1, shop_id=1, name="merged"))
    session.commit()
    assert merged is items[0] and shares_class_keys(merged)
    assert all(shares_class_keys(item) for item in made)
    session.close()
    assert conn.execute("SELECT count(*), sum(name = 'merged') FROM items").fetchone() == (100, 1)
