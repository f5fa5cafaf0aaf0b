"""The workloads through the SQLAlchemy 2.x ORM, the unit of work uow is modelled on.

Sessions are opened with expire_on_commit=False, which is uow's default, so that both keep their
objects' values after a commit instead of reloading them.  Every function takes the run's BenchData
and returns {label: seconds} for one repeat on a fresh in-memory database.
"""

import sqlalchemy
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from bench.common import (
    CHILDREN_PER_PARENT,
    DELETE_CALLS,
    DELETE_FLUSH,
    DENSE_CHANGES,
    DENSE_FLUSH,
    GET_HITS,
    INSERT_ADD,
    INSERT_CONSTRUCT,
    INSERT_FLUSH,
    INSERT_SQL,
    INSERT_TOTAL,
    LOAD,
    MEMORY,
    PARENT_CHILD,
    PARENTS_WITH_ALL_CHILDREN,
    SPARSE_ALL,
    SPARSE_FEW,
    BenchData,
    clock,
    expect,
    measure_memory,
    start_clock,
)

VERSION = sqlalchemy.__version__


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str]
    score: Mapped[float]
    age: Mapped[int]
    active: Mapped[bool]


class Parent(Base):
    __tablename__ = "parents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    children: Mapped[list["Child"]] = relationship(back_populates="parent")


class Child(Base):
    __tablename__ = "children"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"))
    parent: Mapped[Parent] = relationship(back_populates="children")
    name: Mapped[str]


def open_database() -> Engine:
    """A fresh in-memory database with an empty users table.

    StaticPool hands every session the same single connection, so they all see one database.
    """
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    return engine


def open_filled_database(data: BenchData) -> Engine:
    engine = open_database()
    with engine.begin() as connection:
        connection.exec_driver_sql(INSERT_SQL, data.fields)
    return engine


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT count(*) FROM users").scalar_one()


def sum_of_ages(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT sum(age) FROM users").scalar_one()


def insert(data: BenchData) -> dict[str, float]:
    engine = open_database()
    session = Session(engine, expire_on_commit=False)
    start = start_clock()
    users = [
        User(name=name, email=email, score=score, age=age, active=active)
        for name, email, score, age, active in data.fields
    ]
    add_start = clock()
    session.add_all(users)
    flush_start = clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(count_rows(engine), data.rows, "rows after insert")
    engine.dispose()
    return {INSERT_CONSTRUCT: add_start - start, INSERT_ADD: flush_start - add_start,
            INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    engine = open_filled_database(data)
    session = Session(engine, expire_on_commit=False)
    start = start_clock()
    users = session.scalars(select(User)).all()
    end = clock()
    expect(len(users), data.rows, "objects loaded")
    session.close()
    engine.dispose()
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    engine = open_filled_database(data)
    session = Session(engine, expire_on_commit=False)
    per_object = measure_memory(lambda: session.scalars(select(User)).all(), data.rows)
    session.close()
    engine.dispose()
    return {MEMORY: per_object}


def timed_sparse_update(engine: Engine, data: BenchData, load_all: bool) -> float:
    """Change the age of the rows in data.sparse_keys, with either only those or all rows loaded."""
    session = Session(engine, expire_on_commit=False)
    # SQLAlchemy's identity map holds objects weakly: `loaded` keeps them in the session.
    loaded = session.scalars(select(User)).all() if load_all else []
    # With everything loaded these are identity-map hits; otherwise each one loads its row.
    users = [session.get(User, key) for key in data.sparse_keys]
    for user in users:
        user.age = user.age + 1
    start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    return end - start


def sparse_update(data: BenchData) -> dict[str, float]:
    seconds = {}
    for label, load_all in [(SPARSE_FEW, False), (SPARSE_ALL, True)]:
        engine = open_filled_database(data)
        ages_before = sum_of_ages(engine)
        seconds[label] = timed_sparse_update(engine, data, load_all)
        expect(sum_of_ages(engine) - ages_before, len(data.sparse_keys), "sum of ages added")
        engine.dispose()
    return seconds


def dense_update(data: BenchData) -> dict[str, float]:
    engine = open_filled_database(data)
    ages_before = sum_of_ages(engine)
    session = Session(engine, expire_on_commit=False)
    users = session.scalars(select(User)).all()
    start = start_clock()
    for user in users:
        user.age = user.age + 1
    changes_end = clock()
    flush_start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(sum_of_ages(engine) - ages_before, data.rows, "sum of ages added")
    engine.dispose()
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    engine = open_filled_database(data)
    session = Session(engine, expire_on_commit=False)
    loaded = session.scalars(select(User)).all()  # kept alive: the identity map is weak
    doomed = [session.get(User, key) for key in data.delete_keys]
    start = start_clock()
    for user in doomed:
        session.delete(user)
    calls_end = clock()
    flush_start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(count_rows(engine), data.rows - len(data.delete_keys), "rows after delete")
    engine.dispose()
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def get_hits(data: BenchData) -> dict[str, float]:
    engine = open_filled_database(data)
    session = Session(engine, expire_on_commit=False)
    loaded = session.scalars(select(User)).all()
    start = start_clock()
    for key in data.get_keys:
        session.get(User, key)
    end = clock()
    expect(len(session.identity_map), len(loaded), "objects in the identity map")
    session.close()
    engine.dispose()
    return {GET_HITS: end - start}


def parents_and_children(data: BenchData) -> dict[str, float]:
    engine = open_database()
    parents = data.rows // CHILDREN_PER_PARENT
    with Session(engine, expire_on_commit=False) as session:
        start = start_clock()
        objects = []
        for number in range(parents):
            parent = Parent(name=f"parent{number}")
            objects.append(parent)
            for child in range(CHILDREN_PER_PARENT):
                objects.append(Child(name=f"child{child}", parent=parent))
        session.add_all(objects)
        session.commit()
        end = clock()
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM children").scalar()
        complete = connection.exec_driver_sql(PARENTS_WITH_ALL_CHILDREN).scalar()
    expect(count, parents * CHILDREN_PER_PARENT, "children inserted")
    expect(complete, parents, "parents with all their children")
    return {PARENT_CHILD: end - start}


WORKLOADS = {
    "insert": insert,
    "load": load,
    "sparse": sparse_update,
    "dense": dense_update,
    "delete": delete_tenth,
    "get": get_hits,
    "parents": parents_and_children,
    "memory": memory,
}
