"""Importing people's own reference fragments: the importReferenceFragments mutation."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.reference import ReferenceFormat, ReferenceFragment, UngroundedReference
from domain.errors import DomainError
from domain.services import reference


@strawberry.input(description="A file of fragments (MMOS v5 fields) for one source.")
class ImportReferenceFragmentsInput:
    source_id: strawberry.ID
    format: ReferenceFormat
    data: str = strawberry.field(description="The file's text (at most "
                                             "MMOS_MAX_REFERENCE_IMPORT_BYTES, 10,000 fragments).")
    reviewer: str = strawberry.field(description="Who vouches for these fragments.")
    file_name: str | None = strawberry.field(default=None,
                                             description="Kept as each fragment's provenance.")


@strawberry.type
class ImportReferenceFragmentsPayload:
    created: int
    updated: int
    unchanged: int = strawberry.field(description="Fragments already stored exactly so.")
    grounded_count: int
    ungrounded_count: int
    grounded: list[ReferenceFragment] = strawberry.field(
        description="Found in the source: verified reference fragments.")
    ungrounded: list[UngroundedReference] = strawberry.field(
        description="Not found: stored as needs review, never counted as reference.")


ImportReferenceFragmentsResult = Annotated[
    ImportReferenceFragmentsPayload | ValidationError | NotFound | Conflict,
    strawberry.union("ImportReferenceFragmentsResult")]


@strawberry.type
class ReferenceMutations:
    @strawberry.mutation(description="Import a file of reference fragments: each is grounded "
                                     "in the source; all or nothing; re-importing the same ids "
                                     "updates them.")
    async def import_reference_fragments(
            self, info: strawberry.Info,
            input: ImportReferenceFragmentsInput) -> ImportReferenceFragmentsResult:
        try:
            source_id = parse_id(input.source_id, "Source", ("input", "sourceId"))
            result = await reference.import_reference_fragments(
                info.context.runtime.ports, source_id, input.format, input.data,
                input.reviewer, input.file_name)
        except DomainError as exc:
            return as_payload(exc)
        return ImportReferenceFragmentsPayload(
            created=result.created, updated=result.updated, unchanged=result.unchanged,
            grounded_count=len(result.grounded), ungrounded_count=len(result.ungrounded),
            grounded=[ReferenceFragment.from_row(row) for row in result.grounded],
            ungrounded=[UngroundedReference.of(item) for item in result.ungrounded])
