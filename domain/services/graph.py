"""The fragment graph: tags, typed relationships and reviewers' verdicts (audited). Verdicts
feed the quality reference, so their sources are measured again after the commit."""

from __future__ import annotations

from typing import Any

from domain import model as m
from domain.errors import FieldIssue, InvalidInput
from domain.ports import Ports
from domain.relationships import MAX_NOTES_CHARS, check_link
from domain.services.quality import feed_verdicts

MAX_FRAGMENTS = 500
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_CATEGORY_CHARS = 50
MAX_REVIEWER_CHARS = 200

Wanted = dict[int, tuple[str, ...]]  # fragment id → the input path that named it


def text_problem(value: str, max_len: int) -> str | None:
    if len(value) > max_len:
        return f"has {len(value)} characters; the limit is {max_len}"
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def optional_text(value: str | None, path: tuple[str, ...], max_len: int) -> str | None:
    """Trimmed text, None when blank; InvalidInput when too long or not storable."""
    if value is None or not value.strip():
        return None
    problem = text_problem(value, max_len)
    if problem:
        raise InvalidInput.single(path, problem)
    return value.strip()


def check_fragment_list(count: int, path: tuple[str, ...]) -> None:
    """A request names 1..MAX_FRAGMENTS fragments."""
    if not count:
        raise InvalidInput.single(path, "must name at least one fragment")
    if count > MAX_FRAGMENTS:
        raise InvalidInput.single(path, f"has {count} items; the limit is {MAX_FRAGMENTS}")


def tag_names(raw: list[str], path: tuple[str, ...]) -> list[str]:
    """Normalised, distinct tag names (whitespace collapsed, lower case)."""
    if not raw:
        raise InvalidInput.single(path, "must name at least one tag")
    if len(raw) > MAX_TAGS:
        raise InvalidInput.single(path, f"has {len(raw)} items; the limit is {MAX_TAGS}")
    names: list[str] = []
    issues = []
    for index, value in enumerate(raw):
        name = " ".join(value.split()).lower()
        problem = "must not be empty" if not name else text_problem(name, MAX_TAG_CHARS)
        if problem:
            issues.append(FieldIssue((*path, str(index)), problem))
        elif name not in names:
            names.append(name)
    if issues:
        raise InvalidInput(issues)
    return names


async def tag_fragments(ports: Ports, wanted: Wanted, tags: list[str],
                        category: str | None) -> tuple[list[Any], list[Any], int]:
    """Add tags to fragments (idempotent; tags created on first use): (fragments, tags,
    links added)."""
    names = tag_names(tags, ("input", "tags"))
    category = optional_text(category, ("input", "category"), MAX_CATEGORY_CHARS)
    async with ports.uow() as uow:
        rows = await uow.graph.require_fragments(wanted)
        found = await uow.graph.ensure_tags(names, category)
        added = await uow.graph.link_tags(list(wanted), [t.id or 0 for t in found])
    return [rows[i] for i in wanted], found, added


async def untag_fragments(ports: Ports, wanted: Wanted,
                          tags: list[str]) -> tuple[list[Any], int]:
    """Remove tags from fragments (idempotent; unknown names ignored): (fragments, removed)."""
    names = tag_names(tags, ("input", "tags"))
    async with ports.uow() as uow:
        rows = await uow.graph.require_fragments(wanted)
        removed = await uow.graph.unlink_tags(list(wanted), names)
    return [rows[i] for i in wanted], removed


async def relate_fragments(ports: Ports, source: int, target: int,
                           kind: m.RelationshipType, confidence: float, notes: str | None,
                           who: str) -> Any:
    """Link two fragments with a typed relationship (one per pair and type, never a fragment
    to itself)."""
    notes = optional_text(notes, ("input", "notes"), MAX_NOTES_CHARS)
    check_link(source, target, confidence, notes)
    async with ports.uow() as uow:
        # Both rows locked: the check for a symmetric type's reverse link is race-free.
        await uow.graph.require_fragments({source: ("input", "fragmentId"),
                                           target: ("input", "relatedFragmentId")}, lock=True)
        return await uow.graph.add_relationship(
            fragment_id=source, related_id=target, kind=kind, confidence=confidence,
            notes=notes, created_by=who[:MAX_REVIEWER_CHARS])


async def unrelate_by_id(ports: Ports, relationship_id: int) -> list[Any]:
    """Remove one relationship; NotFound when there is none."""
    async with ports.uow() as uow:
        return await uow.graph.delete_relationship(relationship_id,
                                                   ("input", "relationshipId"))


async def unrelate_pair(ports: Ports, source: int, target: int,
                        kind: m.RelationshipType | None) -> list[Any]:
    """Remove the links between two fragments (of one type, or all); none is not an error."""
    async with ports.uow() as uow:
        await uow.graph.require_fragments({source: ("input", "fragmentId"),
                                           target: ("input", "relatedFragmentId")})
        return await uow.graph.delete_links(source, target, kind)


async def decide(ports: Ports, wanted: Wanted, decision: str, notes: str | None,
                 who: str) -> list[Any]:
    """Record one reviewer decision on each fragment (all or none, audited), then measure the
    sources again: verdicts are the quality reference."""
    notes = optional_text(notes, ("input", "notes"), MAX_NOTES_CHARS)
    async with ports.uow() as uow:
        locked = await uow.graph.require_fragments(wanted, lock=True)
        rows = await uow.graph.record_decision({i: locked[i] for i in wanted}, decision,
                                               who[:MAX_REVIEWER_CHARS], notes)
    await feed_verdicts(ports, {row.source_id for row in rows})
    return rows
