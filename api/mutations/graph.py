"""Graph mutations: tagging, relating and verifying fragments. Errors come back as data and
nothing is written when any part of the input is refused."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.enums import RelationshipType
from api.types.graph import Relationship, Tag, VerificationDecision
from api.types.processing import Fragment
from db import graph
from domain import model as m
from domain.errors import DomainError, FieldIssue, InvalidInput
from domain.relationships import MAX_NOTES_CHARS, check_link

log = logging.getLogger("mmos.graph")

MAX_FRAGMENTS = 500
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_CATEGORY_CHARS = 50


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


def _text_problem(value: str, max_len: int) -> str | None:
    if len(value) > max_len:
        return f"has {len(value)} characters; the limit is {max_len}"
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def _optional_text(value: str | None, path: tuple[str, ...], max_len: int) -> str | None:
    if value is None or not value.strip():
        return None
    problem = _text_problem(value, max_len)
    if problem:
        raise InvalidInput.single(path, problem)
    return value.strip()


def _fragment_ids(raw: list[strawberry.ID], path: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """Parsed ids (first occurrence kept) mapped to their input paths."""
    if not raw:
        raise InvalidInput.single(path, "must name at least one fragment")
    if len(raw) > MAX_FRAGMENTS:
        raise InvalidInput.single(path, f"has {len(raw)} items; the limit is {MAX_FRAGMENTS}")
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


def _tag_names(raw: list[str], path: tuple[str, ...]) -> list[str]:
    """Normalised, distinct tag names (whitespace collapsed, lower case)."""
    if not raw:
        raise InvalidInput.single(path, "must name at least one tag")
    if len(raw) > MAX_TAGS:
        raise InvalidInput.single(path, f"has {len(raw)} items; the limit is {MAX_TAGS}")
    names: list[str] = []
    issues = []
    for index, value in enumerate(raw):
        name = " ".join(value.split()).lower()
        problem = "must not be empty" if not name else _text_problem(name, MAX_TAG_CHARS)
        if problem:
            issues.append(FieldIssue((*path, str(index)), problem))
        elif name not in names:
            names.append(name)
    if issues:
        raise InvalidInput(issues)
    return names


async def _feed_quality(info: strawberry.Info, source_ids: Iterable[int]) -> None:
    """Verified and rejected fragments are the quality reference: let it be recomputed."""
    service = info.context.runtime.services.get("quality")
    if service is None:
        return
    for source_id in sorted(set(source_ids)):
        try:
            outcome = service.recompute_source(source_id)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # the decision is committed; a stale score is recomputed later
            log.warning("quality could not be recomputed for source %s", source_id,
                        exc_info=True)


def _reviewer(info: strawberry.Info) -> str:
    return str(info.context.principal.name)[:200]


async def _decide(info: strawberry.Info, wanted: dict[int, tuple[str, ...]],
                  decision: VerificationDecision, notes: str | None) -> list[Fragment]:
    notes = _optional_text(notes, ("input", "notes"), MAX_NOTES_CHARS)
    async with info.context.runtime.transaction() as session:
        locked = await graph.require_fragments(session, wanted, lock=True)
        rows = await graph.record_decision(session, {i: locked[i] for i in wanted},
                                           decision.value, _reviewer(info), notes)
    await _feed_quality(info, (row.source_id for row in rows))
    return [Fragment.from_row(row) for row in rows]


@strawberry.type
class GraphMutations:
    @strawberry.mutation(description="Add tags to fragments (idempotent); tags are created on "
                                     "first use.")
    async def tag_fragments(self, info: strawberry.Info,
                            input: TagFragmentsInput) -> TagFragmentsResult:
        try:
            wanted = _fragment_ids(input.fragment_ids, ("input", "fragmentIds"))
            names = _tag_names(input.tags, ("input", "tags"))
            category = _optional_text(input.category, ("input", "category"), MAX_CATEGORY_CHARS)
            async with info.context.runtime.transaction() as session:
                rows = await graph.require_fragments(session, wanted)
                tags = await graph.ensure_tags(session, names, category)
                added = await graph.link_tags(session, list(wanted), [t.id or 0 for t in tags])
            return TagFragmentsPayload(fragments=[Fragment.from_row(rows[i]) for i in wanted],
                                       tags=[Tag.from_row(t) for t in tags], added=added)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Remove tags from fragments (idempotent; unknown tag "
                                     "names are ignored).")
    async def untag_fragments(self, info: strawberry.Info,
                              input: UntagFragmentsInput) -> UntagFragmentsResult:
        try:
            wanted = _fragment_ids(input.fragment_ids, ("input", "fragmentIds"))
            names = _tag_names(input.tags, ("input", "tags"))
            async with info.context.runtime.transaction() as session:
                rows = await graph.require_fragments(session, wanted)
                removed = await graph.unlink_tags(session, list(wanted), names)
            return UntagFragmentsPayload(fragments=[Fragment.from_row(rows[i]) for i in wanted],
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
            notes = _optional_text(input.notes, ("input", "notes"), MAX_NOTES_CHARS)
            check_link(source, target, input.confidence, notes)
            async with info.context.runtime.transaction() as session:
                await graph.require_fragments(session, {
                    source: ("input", "fragmentId"), target: ("input", "relatedFragmentId")},
                    lock=True)
                row = await graph.add_relationship(
                    session, fragment_id=source, related_id=target,
                    kind=m.RelationshipType(input.relationship_type),
                    confidence=input.confidence, notes=notes, created_by=_reviewer(info))
            return RelateFragmentsPayload(relationship=Relationship.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Remove a relationship by id, or the links between two "
                                     "fragments (of one type, or all).")
    async def unrelate_fragments(self, info: strawberry.Info,
                                 input: UnrelateFragmentsInput) -> UnrelateFragmentsResult:
        try:
            async with info.context.runtime.transaction() as session:
                rows = await _unrelate(session, input)
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


async def _unrelate(session: AsyncSession, input: UnrelateFragmentsInput) -> list[Any]:
    """Delete what the input names; unknown ids are NotFound, an absent pair link is no-op."""
    by_pair = input.fragment_id is not None or input.related_fragment_id is not None
    if input.relationship_id is not None:
        if by_pair:
            raise InvalidInput.single(("input", "relationshipId"),
                                      "give either relationshipId or the two fragment ids")
        path = ("input", "relationshipId")
        return await graph.delete_relationship(
            session, parse_id(input.relationship_id, "Relationship", path), path)
    if input.fragment_id is None or input.related_fragment_id is None:
        raise InvalidInput.single(("input",), "give relationshipId, or fragmentId and "
                                              "relatedFragmentId")
    source = parse_id(input.fragment_id, "Fragment", ("input", "fragmentId"))
    target = parse_id(input.related_fragment_id, "Fragment", ("input", "relatedFragmentId"))
    await graph.require_fragments(session, {source: ("input", "fragmentId"),
                                            target: ("input", "relatedFragmentId")})
    kind = m.RelationshipType(input.relationship_type) if input.relationship_type else None
    return await graph.delete_links(session, source, target, kind)
