"""The entities the example tests use, declared the way a user would declare them.

They live on their own abstract base (``Base``), so their names cannot collide with entities that
other test files or suites declare on ``uow.Entity``.
"""

import datetime
from decimal import Decimal

from uow import Column, Entity, ForeignKey


class Base(Entity, abstract=True):
    pass


class User(Base, table="users"):
    id: int = Column(primary_key=True)
    name: str
    email: str | None = Column(unique=True)
    score: float = 0.0
    joined: str = Column(server_default="'today'")


class Order(Base, table="orders"):
    id: int = Column(primary_key=True)
    user_id: int = Column(references=User)
    total: Decimal = Decimal("0")


class Country(Base, table="countries"):
    """A natural (non-generated) text key."""

    code: str = Column(primary_key=True)
    name: str


class City(Base, table="cities"):
    """A foreign key given by the referenced class's name."""

    id: int = Column(primary_key=True)
    country: str = Column(references="Country")
    name: str


class Pair(Base, table="pairs"):
    """A composite natural key."""

    a: int = Column(primary_key=True)
    b: str = Column(primary_key=True)
    label: str | None = None


class PairNote(Base, table="pair_notes", foreign_keys=[ForeignKey(("pair_a", "pair_b"), Pair)]):
    """A composite foreign key, declared on the class."""

    id: int = Column(primary_key=True)
    pair_a: int
    pair_b: str
    text: str = ""


class Sample(Base, table="samples"):
    """One column of every supported type, and a nullable twin of each."""

    id: int = Column(primary_key=True)
    i: int = 0
    f: float = 0.0
    s: str = ""
    b: bytes = b""
    flag: bool = False
    d: datetime.date = datetime.date(2000, 1, 1)
    dt: datetime.datetime = datetime.datetime(2000, 1, 1)
    dec: Decimal = Decimal("0")
    oi: int | None = None
    of: float | None = None
    os: str | None = None
    ob: bytes | None = None
    oflag: bool | None = None
    od: datetime.date | None = None
    odt: datetime.datetime | None = None
    odec: Decimal | None = None


class Stamp(Base, table="stamps"):
    """A natural key with SQL DEFAULTs (read back with RETURNING)."""

    code: str = Column(primary_key=True)
    n: int = Column(server_default="42")
    note: str | None = Column(server_default="'fresh'")


ALL_MODELS = [User, Order, Country, City, Pair, PairNote, Sample, Stamp]
