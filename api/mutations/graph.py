"""Graph mutations: tagging, relating and verifying fragments. Errors come back as data and
nothing is written when any part of the input is refused."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.enums import RelationshipType
from api.types.graph import Relationship, Tag, VerificationDecision
from api.types.processing import Fragment
from domain import model as m
from domain.errors import DomainError, InvalidInput
from domain.services import graph


@strawberry.input
class TagFragmentsInput:
    fragment_ids: list[strawberry.ID]
    tags: list[str] = strawberry.field(description="Names; trimmed and lower-cased.")
    category: str | None = strawberry.field(
        default=None, description="Category of the tags this call creates (others keep theirs).")


@strawberry.input
class UntagFragmentsInput:
    fragment_ids: list[strawberry.ID]
    tags: list[str]


@strawberry.input
class RelateFragmentsInput:
    fragment_id: strawberry.ID
    related_fragment_id: strawberry.ID
    relationship_type: RelationshipType
    confidence: float = 1.0
    notes: str | None = None


@strawberry.input(description="Either relationshipId, or fragmentId with relatedFragmentId "
                              "(and optionally relationshipType).")
class UnrelateFragmentsInput:
    relationship_id: strawberry.ID | None = None
    fragment_id: strawberry.ID | None = None
    related_fragment_id: strawberry.ID | None = None
    relationship_type: RelationshipType | None = None


@strawberry.input
class VerifyFragmentInput:
    fragment_id: strawberry.ID
    decision: VerificationDecision
    notes: str | None = None


@strawberry.input
class ReviewFragmentsInput:
    fragment_ids: list[strawberry.ID]
    decision: VerificationDecision
    notes: str | None = None


@strawberry.type
class TagFragmentsPayload:
    fragments: list[Fragment]
    tags: list[Tag]
    added: int = strawberry.field(description="New fragment-tag links (existing ones are kept).")


@strawberry.type
class UntagFragmentsPayload:
    fragments: list[Fragment]
    removed: int = strawberry.field(description="Fragment-tag links removed.")


@strawberry.type
class RelateFragmentsPayload:
    relationship: Relationship


@strawberry.type
class UnrelateFragmentsPayload:
    removed: list[Relationship]
    count: int


@strawberry.type
class VerifyFragmentPayload:
    fragment: Fragment


@strawberry.type
class ReviewFragmentsPayload:
    fragments: list[Fragment]
    count: int


TagFragmentsResult = Annotated[TagFragmentsPayload | ValidationError | NotFound | Conflict,
                               strawberry.union("TagFragmentsResult")]
UntagFragmentsResult = Annotated[UntagFragmentsPayload | ValidationError | NotFound | Conflict,
                                 strawberry.union("UntagFragmentsResult")]
RelateFragmentsResult = Annotated[RelateFragmentsPayload | ValidationError | NotFound | Conflict,
                                  strawberry.union("RelateFragmentsResult")]
UnrelateFragmentsResult = Annotated[
    UnrelateFragmentsPayload | ValidationError | NotFound | Conflict,
    strawberry.union("UnrelateFragmentsResult")]
VerifyFragmentResult = Annotated[VerifyFragmentPayload | ValidationError | NotFound | Conflict,
                                 strawberry.union("VerifyFragmentResult")]
ReviewFragmentsResult = Annotated[ReviewFragmentsPayload | ValidationError | NotFound | Conflict,
                                  strawberry.union("ReviewFragmentsResult")]


def _fragment_ids(raw: list[strawberry.ID], path: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """Parsed ids (first occurrence kept) mapped to their input paths."""
    graph.check_fragment_list(len(raw), path)
    wanted: dict[int, tuple[str, ...]] = {}
    issues = []
    for index, value in enumerate(raw):
        item = (*path, str(index))
        try:
            wanted.setdefault(parse_id(value, "Fragment", item), item)
        except InvalidInput as exc:
            issues.extend(exc.issues)
    if issues:
        raise InvalidInput(issues)
    return wanted


def _ports(info: strawberry.Info) -> Any:
    return info.context.runtime.ports


def _who(info: strawberry.Info) -> str:
    return str(info.context.principal.name)


async def _decide(info: strawberry.Info, wanted: dict[int, tuple[str, ...]],
                  decision: VerificationDecision, notes: str | None) -> list[Fragment]:
    rows = await graph.decide(_ports(info), wanted, decision.value, notes, _who(info))
    return [Fragment.from_row(row) for row in rows]


@strawberry.type
class GraphMutations:
    @strawberry.mutation(description="Add tags to fragments (idempotent); tags are created on "
                                     "first use.")
    async def tag_fragments(self, info: strawberry.Info,
                            input: TagFragmentsInput) -> TagFragmentsResult:
        try:
            wanted = _fragment_ids(input.fragment_ids, ("input", "fragmentIds"))
            rows, tags, added = await graph.tag_fragments(_ports(info), wanted, input.tags,
                                                          input.category)
            return TagFragmentsPayload(fragments=[Fragment.from_row(r) for r in rows],
                                       tags=[Tag.from_row(t) for t in tags], added=added)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Remove tags from fragments (idempotent; unknown tag "
                                     "names are ignored).")
    async def untag_fragments(self, info: strawberry.Info,
                              input: UntagFragmentsInput) -> UntagFragmentsResult:
        try:
            wanted = _fragment_ids(input.fragment_ids, ("input", "fragmentIds"))
            rows, removed = await graph.untag_fragments(_ports(info), wanted, input.tags)
            return UntagFragmentsPayload(fragments=[Fragment.from_row(r) for r in rows],
                                         removed=removed)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Link two fragments with a typed relationship (one per "
                                     "pair and type; never a fragment to itself).")
    async def relate_fragments(self, info: strawberry.Info,
                               input: RelateFragmentsInput) -> RelateFragmentsResult:
        try:
            source = parse_id(input.fragment_id, "Fragment", ("input", "fragmentId"))
            target = parse_id(input.related_fragment_id, "Fragment",
                              ("input", "relatedFragmentId"))
            row = await graph.relate_fragments(
                _ports(info), source, target, m.RelationshipType(input.relationship_type),
                input.confidence, input.notes, _who(info))
            return RelateFragmentsPayload(relationship=Relationship.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Remove a relationship by id, or the links between two "
                                     "fragments (of one type, or all).")
    async def unrelate_fragments(self, info: strawberry.Info,
                                 input: UnrelateFragmentsInput) -> UnrelateFragmentsResult:
        try:
            rows = await _unrelate(info, input)
            return UnrelateFragmentsPayload(removed=[Relationship.from_row(r) for r in rows],
                                            count=len(rows))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Record a reviewer's decision on one fragment (audited).")
    async def verify_fragment(self, info: strawberry.Info,
                              input: VerifyFragmentInput) -> VerifyFragmentResult:
        try:
            fragment_id = parse_id(input.fragment_id, "Fragment", ("input", "fragmentId"))
            fragments = await _decide(info, {fragment_id: ("input", "fragmentId")},
                                      input.decision, input.notes)
            return VerifyFragmentPayload(fragment=fragments[0])
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Record one decision on many fragments (all or none).")
    async def review_fragments(self, info: strawberry.Info,
                               input: ReviewFragmentsInput) -> ReviewFragmentsResult:
        try:
            wanted = _fragment_ids(input.fragment_ids, ("input", "fragmentIds"))
            fragments = await _decide(info, wanted, input.decision, input.notes)
            return ReviewFragmentsPayload(fragments=fragments, count=len(fragments))
        except DomainError as exc:
            return as_payload(exc)


async def _unrelate(info: strawberry.Info, input: UnrelateFragmentsInput) -> list[Any]:
    """Delete what the input names; unknown ids are NotFound, an absent pair link is no-op."""
    by_pair = input.fragment_id is not None or input.related_fragment_id is not None
    if input.relationship_id is not None:
        if by_pair:
            raise InvalidInput.single(("input", "relationshipId"),
                                      "give either relationshipId or the two fragment ids")
        path = ("input", "relationshipId")
        return await graph.unrelate_by_id(
            _ports(info), parse_id(input.relationship_id, "Relationship", path))
    if input.fragment_id is None or input.related_fragment_id is None:
        raise InvalidInput.single(("input",), "give relationshipId, or fragmentId and "
                                              "relatedFragmentId")
    source = parse_id(input.fragment_id, "Fragment", ("input", "fragmentId"))
    target = parse_id(input.related_fragment_id, "Fragment", ("input", "relatedFragmentId"))
    kind = m.RelationshipType(input.relationship_type) if input.relationship_type else None
    return await graph.unrelate_pair(_ports(info), source, target, kind)
