"""The optimization scenario's cast: four priced models behind the fake provider, each behaving
like one kind of model a team meets (equally good, inventing, finding half, the reference)."""

from __future__ import annotations

from tests.support.fake_provider import (
    RecordedRequest,
    Scripted,
    echo_responder,
    half_responder,
    inventing_responder,
)

# Prices per million tokens (input, output): the reference is the dearest by far.
REFERENCE = "ref-large"
EQUAL = "good-small"
INVENTOR = "inventor"
HALF = "half-small"
PRICES = {REFERENCE: ("10", "30"), EQUAL: ("0.6", "1.8"), INVENTOR: ("0.4", "1.2"),
          HALF: ("0.2", "0.6")}
MODELS = [REFERENCE, EQUAL, INVENTOR, HALF]

CREATE_SOURCE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id content } } } }"""
START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model } } } }"""


def behaviour(request: RecordedRequest) -> Scripted:
    """Each model answers as its kind does: all fragments, half of them, or one invented."""
    if request.model == HALF:
        return half_responder(request)
    if request.model == INVENTOR:
        return inventing_responder()(request)
    return echo_responder(request)
