"""Types the review page reads: who is calling, a source's spans, runs per model."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay

import api.types.enums  # noqa: F401  (registers the GraphQL enums of these domain enums)
from db.review import fragment_spans, runs_per_model
from domain import model as m


@strawberry.type(description="The caller of this request: a key's name and role, or the "
                             "local developer when the server runs without keys.")
class Caller:
    name: str
    role: str = strawberry.field(description="viewer, editor or operator.")
    can_review: bool = strawberry.field(
        description="May record verification decisions (editor or operator).")
    keyless: bool = strawberry.field(
        description="No key was sent: the local developer of a server without keys.")


@strawberry.type(description="Where one fragment sits in its source: enough to draw it.")
class FragmentSpan:
    fragment_id: relay.GlobalID = strawberry.field(description="The Fragment's global ID.")
    run_id: relay.GlobalID
    model: str
    char_start: int | None
    char_end: int | None
    grounding: m.Grounding
    verification_status: m.VerificationStatus
    category: m.Category

    @classmethod
    def from_row(cls, row: Any) -> FragmentSpan:
        return cls(fragment_id=relay.GlobalID("Fragment", str(row.id)),
                   run_id=relay.GlobalID("Run", str(row.run_id)), model=row.model_name,
                   char_start=row.char_start, char_end=row.char_end,
                   grounding=m.Grounding(row.grounding),
                   verification_status=m.VerificationStatus(row.verification_status),
                   category=m.Category(row.category))


@strawberry.type(description="A model's runs over one source.")
class ModelRuns:
    model: str
    runs: int
    completed_runs: int = strawberry.field(description="Completed, with errors or not.")
    active_runs: int = strawberry.field(description="Pending, processing or waiting budget.")


async def spans_of_source(info: strawberry.Info, source_id: int,
                          run_ids: list[relay.GlobalID] | None) -> list[FragmentSpan]:
    """Every span of the source (of the given runs only), in text order, in one statement."""
    wanted = None
    if run_ids is not None:
        wanted = [int(run.node_id) for run in run_ids
                  if run.type_name == "Run" and run.node_id.isdigit()]
    async with info.context.runtime.read() as session:
        rows = await fragment_spans(session, source_id, wanted)
    return [FragmentSpan.from_row(row) for row in rows]


async def model_runs_of(info: strawberry.Info, source_id: int) -> list[ModelRuns]:
    loader = info.context.loaders.get("model_runs", runs_per_model, one_statement=True)
    found = await loader.load(source_id)
    return [ModelRuns(model=item["model"], runs=item["runs"], completed_runs=item["completed"],
                      active_runs=item["active"]) for item in found or ()]
