"""A program written the way a uow user writes one, for a type checker to read.

tests/test_typing.py runs mypy over this file (no errors allowed) and runs it with Python (it
must work, too): declarations as the README writes them (``id: int = Column(primary_key=True)``,
relationships with and without an annotation), constructors checked against the annotations,
and the public calls of a session.  The annotated
local variables state what a type checker must infer.
"""

import sqlite3

import uow
from uow import Collection, Column, Entity, ForeignKey, Reference, Session, capture_sql, errors


class Shop(Entity, abstract=True):
    """This program's own registry, so its classes never meet another program's."""


class User(Shop, table="users"):
    id: int = Column(primary_key=True)            # SQLite numbers it: not needed by the constructor
    name: str
    email: str | None = Column(unique=True)
    orders: Collection["Order"] = Collection("Order", "user", cascade="all, delete-orphan")


class Order(Shop, table="orders"):
    id: int = Column(primary_key=True)
    user_id: int = Column(references=User)
    user: Reference[User] = Reference("user_id")
    total: int = 0
    tags: list = Column(default_factory=list)     # stored as JSON


class Line(Shop, table="lines", foreign_keys=[ForeignKey(("order_id",), Order)]):
    id: int = Column(primary_key=True)
    order_id: int = Column()                      # the reference below may fill it
    order = Reference("order_id")                 # unannotated, as the README writes them
    version: int = Column(version=True)


def main() -> None:
    connection: sqlite3.Connection = uow.connect(":memory:")
    uow.create_all(connection, Shop)
    with Session(connection) as session:          # commits on success, rolls back on error
        ann = User(name="Ann")
        order = Order(total=30, user=ann, tags=["gift"])
        ann.orders.append(Order(total=5))
        session.add(ann)
        line = Line()
        line.order = order                        # (unannotated: not a constructor keyword to mypy)
        session.add_all([order, line])
        plan: uow.FlushPlan = session.plan()
        assert plan.row_count == 4
        print(plan)
    session = Session(connection, autoflush=False)
    found = session.get(User, 1)
    assert found is not None
    user: User = found
    name: str = user.name
    orders: list[Order] = user.orders
    first: Order = orders[0]
    owner: User | None = first.user
    assert owner is user and name == "Ann"
    assert uow.state_of(user) is uow.ObjectState.PERSISTENT
    nested = session.begin_nested()
    session.delete(first)
    nested.rollback()
    user.email = "ann@example.org"
    assert session.dirty_fields(user) == ["email"]
    cheap: list[Order] = session.filter(Order, total=5, order_by="id", limit=1)
    assert cheap[0].total == 5
    with capture_sql() as statements:
        session.commit()
    sent: list[uow.Statement] = statements
    assert any(statement.sql.startswith("UPDATE") for statement in sent)
    try:
        session.get_one(User, 99)
    except errors.NotFoundError as error:
        message: str = str(error)
        assert "99" in message
    seen: list[str] = []

    def audit(session: Session, *, error: BaseException | None = None, **info: object) -> None:
        seen.append("committed" if error is None else f"failed: {error}")

    uow.listen(session, "after_commit", audit)
    session.commit()
    uow.remove_listener(session, "after_commit", audit)
    session.close()
    assert seen == ["committed"]


if __name__ == "__main__":
    main()
