"""GraphQL enums: the domain enumerations, exposed in upper case."""

from __future__ import annotations

import enum

import strawberry

from domain import model as m

SourceType = strawberry.enum(m.SourceType, name="SourceType")
SourceQuality = strawberry.enum(m.SourceQuality, name="SourceQuality")
ExtractionPriority = strawberry.enum(m.ExtractionPriority, name="ExtractionPriority")
SourceStatus = strawberry.enum(m.SourceStatus, name="SourceStatus")
FragmentType = strawberry.enum(m.FragmentType, name="FragmentType")
Category = strawberry.enum(m.Category, name="Category")
RelationshipType = strawberry.enum(m.RelationshipType, name="RelationshipType")
Grounding = strawberry.enum(m.Grounding, name="Grounding")
VerificationStatus = strawberry.enum(m.VerificationStatus, name="VerificationStatus")
BatchStatus = strawberry.enum(m.BatchStatus, name="BatchStatus")
RunStatus = strawberry.enum(m.RunStatus, name="RunStatus")
JobStatus = strawberry.enum(m.JobStatus, name="JobStatus")
Strategy = strawberry.enum(m.Strategy, name="Strategy")


@strawberry.enum(description="Sort direction; ties are always broken by id.")
class OrderDirection(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


@strawberry.enum(description="How a batch's chunks reach the provider: INTERACTIVE, a call per "
                             "chunk; BATCH, the provider's batch API (about half price, results "
                             "within a day; OpenAI-format batch providers only).")
class ProcessingMode(enum.StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"
