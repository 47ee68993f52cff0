"""The Strawberry schema: queries, mutations, subscriptions and the hardening extensions."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import strawberry
from graphql import ASTValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.websockets import WebSocket
from strawberry import relay
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from api.auth import Principal, RoleCheck
from api.errors import PublicError, should_mask_error
from api.metrics import OperationMetrics
from api.mutations.graph import GraphMutations
from api.mutations.optimization import OptimizationMutations
from api.mutations.processing import ProcessingMutations
from api.mutations.reference import ReferenceMutations
from api.mutations.sources import SourceMutations
from api.queries.calibration import CalibrationQueries
from api.queries.forecast import ForecastQueries
from api.queries.graph import GraphQueries
from api.queries.optimization import OptimizationQueries
from api.queries.processing import ProcessingQueries
from api.queries.queue import QueueQueries
from api.queries.review import ReviewQueries
from api.queries.sources import SourceQueries
from api.query_cost import MAX_STEPS, TooComplexToEstimate, estimate_nodes, refusal_message
from api.ratelimit import RateLimited, limiter_of
from api.schema_executor import ScalarFastPathExecutor
from api.settings import Settings, get_settings
from api.subscriptions import Subscription
from api.validation import NoNulInStrings

log = logging.getLogger("mmos.graphql")


def _root_types() -> tuple[type, type]:
    # Relay node fields are bound to one schema when it is built: each schema gets new roots.
    @strawberry.type
    class Query(SourceQueries, ProcessingQueries, QueueQueries, GraphQueries,
                OptimizationQueries, CalibrationQueries, ReviewQueries, ForecastQueries):
        node: relay.Node | None = relay.node(description="Any object by its global ID.")
        nodes: list[relay.Node | None] = relay.node(
            description="Objects by global IDs, in order."
        )

    @strawberry.type
    class Mutation(SourceMutations, ProcessingMutations, GraphMutations, OptimizationMutations,
                   ReferenceMutations):
        pass

    return Query, Mutation


@functools.cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The depth and alias rules for these limits, built once.

    QueryDepthLimiter and MaxAliasesLimiter build a new rule class per instance, and
    ValidationCache keys on the rule classes: with an instance per request, no document would
    ever be found in the cache.
    """
    return (*QueryDepthLimiter(max_depth=max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
            NoNulInStrings)


class ConfiguredLimits(SchemaExtension):
    """The token, depth and alias limits and the introspection switch of the settings the
    request runs under (`Context.limits`: the serving app's). An operation executed without
    an MMOS context (a script calling `schema.execute`) gets the process settings."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        limits: Settings = getattr(context, "limits", None) or get_settings()
        self.execution_context.parse_options["max_tokens"] = limits.max_query_tokens
        rules = _limit_rules(limits.max_query_depth, limits.max_aliases)
        if not limits.introspection_enabled:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        self.execution_context.validation_rules = (
            self.execution_context.validation_rules + rules)
        yield


def _limits(execution_context: Any) -> Settings:
    limits: Settings = getattr(execution_context.context, "limits", None) or get_settings()
    return limits


class QueryCostLimit(SchemaExtension):
    """Refuses, before it runs, an operation that could produce more objects than
    MMOS_MAX_QUERY_NODES (api/query_cost.py: lists multiplied down the tree, fragments and
    variables included; a subscription per event), with a QUERY_TOO_COSTLY error giving the
    estimate and the limit."""

    def on_execute(self) -> Iterator[None]:
        execution_context = self.execution_context
        document = execution_context.graphql_document
        if document is not None:
            limits = _limits(execution_context)
            try:
                estimate = estimate_nodes(
                    execution_context.schema._schema, document, execution_context.variables,
                    execution_context.operation_name, list_size=limits.query_cost_list_size)
            except TooComplexToEstimate:
                raise PublicError(f"this operation has more than {MAX_STEPS} distinct "
                                  "selections to weigh; split it", code="QUERY_TOO_COSTLY"
                                  ) from None
            if estimate is not None and estimate.nodes > limits.max_query_nodes:
                error = PublicError(refusal_message(estimate, limits.max_query_nodes),
                                    code="QUERY_TOO_COSTLY")
                assert error.extensions is not None
                error.extensions.update(estimatedNodes=estimate.nodes,
                                        maxNodes=limits.max_query_nodes)
                raise error
        yield


class WebSocketRateLimit(SchemaExtension):
    """Each operation over a WebSocket counts against its key's rate limit; over it, the
    operation gets a RATE_LIMITED error with `retryAfter` (seconds). HTTP requests are
    counted where their key is checked (api.auth.authenticate)."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        request = getattr(context, "request", None)
        principal = getattr(context, "principal", None)
        if (isinstance(request, WebSocket) and isinstance(principal, Principal)
                and principal.key_id is not None):
            limiter = limiter_of(request)
            if limiter is not None:
                try:
                    await limiter.enforce(principal.key_id)
                except RateLimited as exc:
                    error = PublicError(str(exc), code="RATE_LIMITED")
                    assert error.extensions is not None
                    error.extensions["retryAfter"] = exc.retry_after
                    raise error from None
        yield


EXTENSIONS: list[Callable[[], Any]] = [
    # Frontends repeat the same documents: parse and validate each distinct one once.
    lambda: ParserCache(maxsize=256),
    lambda: ValidationCache(maxsize=256),
    # Token, depth and alias limits, NUL-free string literals, introspection on or off.
    ConfiguredLimits,
    WebSocketRateLimit,
    RoleCheck,
    # Objects the operation could produce (MMOS_MAX_QUERY_NODES), before it runs.
    QueryCostLimit,
    OperationMetrics,
    lambda: MaskErrors(should_mask_error=should_mask_error,
                       error_message="Internal error; it has been logged."),
]


class MMOSSchema(strawberry.Schema):
    """Client mistakes are answers, not incidents: only unexpected errors reach the error log
    (they are logged where they are masked)."""

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        for error in errors:
            log.debug("GraphQL error: %s", error.message)

    def get_extensions(self, sync: bool = False) -> list[SchemaExtension]:
        # Synchronous execution (`introspect()`, scripts) serves no WebSocket and cannot
        # await: the one asynchronous extension is left out of it.
        extensions = super().get_extensions(sync=sync)
        if sync:
            extensions = [e for e in extensions if not isinstance(e, WebSocketRateLimit)]
        return extensions


def _build() -> strawberry.Schema:
    query, mutation = _root_types()
    return MMOSSchema(
        query=query,
        mutation=mutation,
        subscription=Subscription,
        extensions=EXTENSIONS,
        execution_context_class=ScalarFastPathExecutor,
        config=StrawberryConfig(auto_camel_case=True),
    )


# One schema per process: Strawberry binds types (unions, relay fields) to the schema built.
schema = _build()
