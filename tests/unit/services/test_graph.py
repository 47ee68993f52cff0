"""Fragment graph use cases (domain/services/graph.py) against in-memory fakes."""

from __future__ import annotations

import math

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.model import RelationshipType
from domain.services import graph
from tests.support.fakes import FakeUnitOfWorkFactory, fakes_of, make_ports

TAGS = ("input", "tags")


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


def wanted(*ids: int) -> dict[int, tuple[str, ...]]:
    return {fid: ("input", "fragmentIds", str(i)) for i, fid in enumerate(ids)}


def two_fragments(fake: FakeUnitOfWorkFactory) -> tuple[int, int]:
    source = fake.add_source()
    return fake.add_fragment(source.id or 0).id, fake.add_fragment(source.id or 0).id


# --- tag_fragments --------------------------------------------------------------------------


async def test_tag_fragments_normalises_names_creates_tags_and_links_each_fragment() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    fake.add_tag("trust", "values")
    # When
    rows, tags, added = await graph.tag_fragments(
        ports, wanted(b, a), ["  Trust ", "Work   LIFE", "trust", "work life"], " topics ")
    # Then
    assert [r.id for r in rows] == [b, a]
    assert [(t.name, t.category) for t in tags] == [("trust", "values"),
                                                    ("work life", "topics")]
    assert added == 4
    assert fake.called("graph.ensure_tags") == [((["trust", "work life"], "topics"), {})]
    assert len(fake.state.fragment_tags) == 4
    assert [u.committed for u in fake.units] == [True]


async def test_tag_fragments_again_adds_no_link() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, _ = two_fragments(fake)
    await graph.tag_fragments(ports, wanted(a), ["x"], None)
    # When
    _, _, added = await graph.tag_fragments(ports, wanted(a), ["X"], None)
    # Then
    assert added == 0


@pytest.mark.parametrize(("tags", "expected"), [
    ([], [TAGS]),
    ([f"t{i}" for i in range(51)], [TAGS]),
    (["ok", "   "], [(*TAGS, "1")]),
    (["x" * 101], [(*TAGS, "0")]),
    (["ok", "nul\x00"], [(*TAGS, "1")]),
    (["lone \ud800 surrogate"], [(*TAGS, "0")]),
    (["", "ok", "y" * 101], [(*TAGS, "0"), (*TAGS, "2")]),
])
async def test_tag_fragments_refuses_bad_tag_lists_naming_each_path(
        tags: list[str], expected: list[tuple[str, ...]]) -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.tag_fragments(ports, wanted(a), tags, None)
    # Then
    assert paths(caught.value) == expected
    assert fakes_of(ports).units == []


async def test_tag_fragments_accepts_fifty_tags_of_a_hundred_characters() -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    names = [f"{i:02d}" + "x" * 98 for i in range(50)]
    # When
    _, tags, added = await graph.tag_fragments(ports, wanted(a), names, None)
    # Then
    assert (len(tags), added) == (50, 50)


@pytest.mark.parametrize("category", ["c" * 51, "bad\x00", "\udfff"])
async def test_tag_fragments_refuses_a_bad_category(category: str) -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.tag_fragments(ports, wanted(a), ["ok"], category)
    # Then
    assert paths(caught.value) == [("input", "category")]
    assert fakes_of(ports).state.tags == {}


async def test_tag_fragments_treats_a_blank_category_as_none() -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    _, [tag], _ = await graph.tag_fragments(ports, wanted(a), ["ok"], "   ")
    # Then
    assert tag.category is None


async def test_tag_fragments_refuses_an_unknown_fragment_naming_its_path_and_writes_nothing(
        ) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, _ = two_fragments(fake)
    # When
    with pytest.raises(NotFound) as caught:
        await graph.tag_fragments(ports, wanted(a, 999), ["new"], None)
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Fragment", "999", ("input", "fragmentIds", "1"))
    assert fake.state.tags == {}
    assert fake.state.fragment_tags == set()
    assert [u.rolled_back for u in fake.units] == [True]


# --- untag_fragments ------------------------------------------------------------------------


async def test_untag_fragments_removes_the_named_tags_ignoring_unknown_names() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    await graph.tag_fragments(ports, wanted(a, b), ["keep", "drop"], None)
    # When
    rows, removed = await graph.untag_fragments(ports, wanted(b, a), [" DROP ", "never-seen"])
    # Then
    assert [r.id for r in rows] == [b, a]
    assert removed == 2
    assert fake.state.fragment_tags == {(a, fake.state.tags["keep"].id),
                                        (b, fake.state.tags["keep"].id)}


@pytest.mark.parametrize(("tags", "expected"), [([], [TAGS]), (["a", " "], [(*TAGS, "1")])])
async def test_untag_fragments_refuses_bad_tag_lists(
        tags: list[str], expected: list[tuple[str, ...]]) -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.untag_fragments(ports, wanted(a), tags)
    # Then
    assert paths(caught.value) == expected


async def test_untag_fragments_refuses_an_unknown_fragment_and_removes_nothing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, _ = two_fragments(fake)
    await graph.tag_fragments(ports, wanted(a), ["t"], None)
    # When
    with pytest.raises(NotFound) as caught:
        await graph.untag_fragments(ports, wanted(404, a), ["t"])
    # Then
    assert caught.value.path == ("input", "fragmentIds", "0")
    assert len(fake.state.fragment_tags) == 1


# --- relate_fragments -----------------------------------------------------------------------


async def test_relate_fragments_stores_a_link_with_both_fragments_locked() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    # When
    row = await graph.relate_fragments(ports, a, b, RelationshipType.ELABORATES, 0.75,
                                       "  see the second answer ", "r" * 250)
    # Then
    assert (row.fragment_id, row.related_fragment_id, row.relationship_type,
            row.confidence, row.notes, row.created_by) == \
        (a, b, "elaborates", 0.75, "see the second answer", "r" * 200)
    assert fake.called("graph.require_fragments") == [
        (({a: ("input", "fragmentId"), b: ("input", "relatedFragmentId")},), {"lock": True})]


async def test_relate_fragments_refuses_a_self_link() -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.relate_fragments(ports, a, a, RelationshipType.SUPPORTS, 0.5, None, "me")
    # Then
    assert paths(caught.value) == [("input", "relatedFragmentId")]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("confidence", [-0.01, 1.01, math.nan])
async def test_relate_fragments_refuses_a_confidence_outside_zero_to_one(
        confidence: float) -> None:
    # Given
    ports = make_ports()
    a, b = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.relate_fragments(ports, a, b, RelationshipType.SUPPORTS, confidence,
                                     None, "me")
    # Then
    assert paths(caught.value) == [("input", "confidence")]


async def test_relate_fragments_reports_a_self_link_and_a_bad_confidence_together() -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.relate_fragments(ports, a, a, RelationshipType.SUPPORTS, 2.0, None, "me")
    # Then
    assert paths(caught.value) == [("input", "relatedFragmentId"), ("input", "confidence")]


@pytest.mark.parametrize("notes", ["n" * 2001, "nul\x00", "\ud800"])
async def test_relate_fragments_refuses_notes_it_cannot_store(notes: str) -> None:
    # Given
    ports = make_ports()
    a, b = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.relate_fragments(ports, a, b, RelationshipType.SUPPORTS, 0.5, notes, "me")
    # Then
    assert paths(caught.value) == [("input", "notes")]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("missing", ["source", "target"])
async def test_relate_fragments_refuses_an_unknown_fragment_naming_its_field(
        missing: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, _ = two_fragments(fake)
    source, target = (404, a) if missing == "source" else (a, 404)
    # When
    with pytest.raises(NotFound) as caught:
        await graph.relate_fragments(ports, source, target, RelationshipType.SUPPORTS, 0.5,
                                     None, "me")
    # Then
    assert caught.value.path == (("input", "fragmentId") if missing == "source"
                                 else ("input", "relatedFragmentId"))
    assert fake.state.relationships == {}


@pytest.mark.parametrize(("kind", "reverse"), [
    (RelationshipType.SUPPORTS, False),
    (RelationshipType.CONTRADICTS, True),
])
async def test_relate_fragments_refuses_a_link_the_pair_already_has(
        kind: RelationshipType, reverse: bool) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    existing = fake.add_relationship(b, a, kind) if reverse else fake.add_relationship(a, b, kind)
    # When
    with pytest.raises(Conflict) as caught:
        await graph.relate_fragments(ports, a, b, kind, 0.5, None, "me")
    # Then
    assert (caught.value.path, caught.value.existing_id) == \
        (("input", "relationshipType"), str(existing.id))
    assert list(fake.state.relationships) == [existing.id]
    assert [u.rolled_back for u in fake.units] == [True]


# --- unrelate_by_id / unrelate_pair -----------------------------------------------------------


async def test_unrelate_by_id_removes_the_relationship_and_returns_it() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    link = fake.add_relationship(a, b)
    # When
    [gone] = await graph.unrelate_by_id(ports, link.id)
    # Then
    assert gone.id == link.id
    assert fake.state.relationships == {}


async def test_unrelate_by_id_refuses_an_unknown_relationship() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await graph.unrelate_by_id(ports, 77)
    # Then
    assert (caught.value.kind, caught.value.path) == ("Relationship",
                                                      ("input", "relationshipId"))


async def test_unrelate_pair_removes_the_links_of_one_type_or_all() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    fake.add_relationship(a, b, RelationshipType.SUPPORTS)
    fake.add_relationship(a, b, RelationshipType.ELABORATES)
    fake.add_relationship(b, a, RelationshipType.RELATED_TO)
    # When
    one = await graph.unrelate_pair(ports, a, b, RelationshipType.SUPPORTS)
    rest = await graph.unrelate_pair(ports, a, b, None)
    none = await graph.unrelate_pair(ports, a, b, None)
    # Then
    assert [r.relationship_type for r in one] == ["supports"]
    assert sorted(r.relationship_type for r in rest) == ["elaborates", "related_to"]
    assert none == []
    assert fake.state.relationships == {}


@pytest.mark.parametrize("missing", ["source", "target"])
async def test_unrelate_pair_refuses_an_unknown_fragment(missing: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = two_fragments(fake)
    fake.add_relationship(a, b)
    # When
    with pytest.raises(NotFound) as caught:
        await graph.unrelate_pair(ports, *((404, a) if missing == "source" else (a, 404)),
                                  None)
    # Then
    assert caught.value.path == (("input", "fragmentId") if missing == "source"
                                 else ("input", "relatedFragmentId"))
    assert len(fake.state.relationships) == 1


# --- decide ---------------------------------------------------------------------------------


async def test_decide_records_the_decision_then_remeasures_each_source_once() -> None:
    # Given: three fragments of two sources
    ports = make_ports()
    fake = fakes_of(ports)
    s1, s2 = fake.add_source(), fake.add_source()
    f1 = fake.add_fragment(s2.id or 0, verification_status="verified").id
    f2 = fake.add_fragment(s1.id or 0).id
    f3 = fake.add_fragment(s2.id or 0).id
    # When
    rows = await graph.decide(ports, wanted(f3, f1, f2), "rejected", " dup ", "x" * 300)
    # Then
    assert [r.id for r in rows] == [f3, f1, f2]
    assert {r.verification_status for r in rows} == {"rejected"}
    assert [(e.fragment_id, e.previous_status, e.reviewer, e.notes)
            for e in fake.state.verification_events] == [
        (f3, "pending", "x" * 200, "dup"), (f1, "verified", "x" * 200, "dup"),
        (f2, "pending", "x" * 200, "dup")]
    assert fake.called("graph.require_fragments")[0][1] == {"lock": True}
    assert [args[0] for args, _ in fake.called("performance.measure")] == [s1.id, s2.id]
    assert fake.units[0].committed
    assert fake.timeline.index(("commit", 0)) < fake.timeline.index(("begin", 1))


async def test_decide_keeps_the_decision_when_remeasuring_fails() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    s1, s2 = fake.add_source(), fake.add_source()
    f1, f2 = fake.add_fragment(s1.id or 0).id, fake.add_fragment(s2.id or 0).id
    fake.fail("performance.measure", RuntimeError("deadlock"),
              when=lambda source_id, defaults: source_id == s1.id)
    # When
    rows = await graph.decide(ports, wanted(f1, f2), "verified", None, "rev")
    # Then
    assert [r.verification_status for r in rows] == ["verified", "verified"]
    assert [fake.state.fragments[f].verification_status for f in (f1, f2)] == \
        ["verified", "verified"]
    assert len(fake.state.verification_events) == 2
    assert fake.state.measurements == {s2.id: 1}


async def test_decide_refuses_an_unknown_fragment_and_records_and_measures_nothing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, _ = two_fragments(fake)
    # When
    with pytest.raises(NotFound) as caught:
        await graph.decide(ports, wanted(a, 404), "verified", None, "rev")
    # Then
    assert caught.value.path == ("input", "fragmentIds", "1")
    assert fake.state.fragments[a].verification_status == "pending"
    assert fake.state.verification_events == []
    assert "performance.measure" not in fake.call_names()


async def test_decide_refuses_notes_over_the_limit_before_any_write() -> None:
    # Given
    ports = make_ports()
    a, _ = two_fragments(fakes_of(ports))
    # When
    with pytest.raises(InvalidInput) as caught:
        await graph.decide(ports, wanted(a), "verified", "n" * 2001, "rev")
    # Then
    assert paths(caught.value) == [("input", "notes")]
    assert fakes_of(ports).units == []


# --- check_fragment_list (the adapters' guard on fragment id lists) ---------------------------


@pytest.mark.parametrize(("count", "message"), [(0, "at least one"), (501, "limit is 500")])
def test_check_fragment_list_refuses_an_empty_or_overlong_list(count: int, message: str) -> None:
    # Given
    path = ("input", "fragmentIds")
    # When
    with pytest.raises(InvalidInput) as caught:
        graph.check_fragment_list(count, path)
    # Then
    assert paths(caught.value) == [path]
    assert message in caught.value.message


@pytest.mark.parametrize("count", [1, 500])
def test_check_fragment_list_accepts_one_to_five_hundred(count: int) -> None:
    # Given / When / Then
    graph.check_fragment_list(count, ("input", "fragmentIds"))
