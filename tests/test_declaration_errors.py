"""Bad arguments to a declaration (Column, ForeignKey, Reference, Collection, the class itself) are
refused with a MappingError that names the class, attribute and value, not a bare TypeError or
AttributeError from deep inside Python."""

import pytest

import uow
from uow import Collection, Column, Entity, ForeignKey, Reference, errors



class DeclaredBase(Entity, abstract=True):
    pass


class Owner(DeclaredBase, table="declared_owners"):
    id: int = Column(primary_key=True)
    name: str
    pets = Collection("Pet", "owner")


class Pet(DeclaredBase, table="declared_pets"):
    id: int = Column(primary_key=True)
    owner_id: int = Column(references=Owner)
    owner = Reference("owner_id")


def declare(**attributes):
    namespace = {"__annotations__": {"id": int}, "id": Column(primary_key=True)}
    for name, (annotation, value) in attributes.items():
        namespace["__annotations__"][name] = annotation
        if value is not None:
            namespace[name] = value
    return type("Thing", (DeclaredBase,), namespace, table="declared_things")


@pytest.mark.parametrize("make, message", [
    (lambda: declare(x=(int, Column(references=42))), "Thing.x: references= takes an entity class or its name, not 42"),
    (lambda: declare(x=(list, Column(default_factory=[]))), "Thing.x: default_factory must be a callable"),
    (lambda: Reference(5), "Reference(5): name the foreign-key column"),
    (lambda: Collection(5, "owner"), "Collection(5, 'owner'): give the target entity class"),
    (lambda: Collection("Pet", None), "Collection('Pet', None): give the target entity class"),
    (lambda: ForeignKey(5, "Owner"), "ForeignKey(5, ...): name the column"),
    (lambda: ForeignKey("x", 3.5), "ForeignKey(('x',), 3.5): the target is an entity class or its name"),
], ids=["references", "default_factory", "Reference", "Collection target", "Collection reference",
        "ForeignKey columns", "ForeignKey target"])
def test_a_wrong_argument_to_a_declaration_is_a_mapping_error_naming_it(make, message):
    with pytest.raises(errors.MappingError) as caught:
        make()
    assert str(caught.value).startswith(message)


def test_a_cascade_that_is_not_a_string_is_refused_naming_the_attribute():
    with pytest.raises(errors.MappingError) as caught:
        type("Thing", (DeclaredBase,), {"__annotations__": {"id": int, "owner_id": int},
                                      "id": Column(primary_key=True), "owner_id": Column(references=Owner),
                                      "owner": Reference("owner_id", cascade=["all"])}, table="declared_things")
    assert str(caught.value).startswith("Thing.owner: cascade is a comma-separated string")


def test_foreign_keys_given_one_foreign_key_instead_of_a_list_is_refused():
    with pytest.raises(errors.MappingError, match="foreign_keys takes a list of ForeignKey"):
        type("Thing", (DeclaredBase,), {"__annotations__": {"id": int, "owner_id": int}, "id": Column(primary_key=True)},
             table="declared_things", foreign_keys=ForeignKey("owner_id", Owner))


def test_inheriting_a_mapped_class_through_a_mixin_names_the_mapped_class():
    class Mixin:
        pass

    with pytest.raises(errors.MappingError) as caught:
        class Puppy(Mixin, Pet):
            pass
    assert str(caught.value).startswith("Puppy inherits from the mapped class Pet;")


def test_assigning_a_collection_something_that_is_not_a_list_names_the_collection():
    with pytest.raises(errors.MappingError) as caught:
        Owner(name="ann", pets=5)
    assert str(caught.value) == "Owner.pets holds a list of Pet objects; assign a list, not 5"


def test_an_unknown_constructor_keyword_lists_the_relationships_too():
    with pytest.raises(errors.UnknownFieldError) as caught:
        Pet(ownr=None)
    assert str(caught.value) == "Pet() got unknown field(s) ownr; its fields are id, owner_id, owner"


def test_a_none_key_says_a_primary_key_is_never_null():
    with pytest.raises(errors.IdentityError) as caught:
        uow.identity_key(Owner, None)
    assert str(caught.value) == "Owner.id key value None: a primary key is never NULL"
