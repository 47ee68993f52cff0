"""The Strawberry schema: queries, mutations, subscriptions and the hardening extensions."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from graphql import ASTValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
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

from api.auth import RoleCheck
from api.errors import should_mask_error
from api.metrics import OperationMetrics
from api.mutations.graph import GraphMutations
from api.mutations.optimization import OptimizationMutations
from api.mutations.processing import ProcessingMutations
from api.mutations.sources import SourceMutations
from api.queries.graph import GraphQueries
from api.queries.optimization import OptimizationQueries
from api.queries.processing import ProcessingQueries
from api.queries.queue import QueueQueries
from api.queries.sources import SourceQueries
from api.schema_executor import ScalarFastPathExecutor
from api.settings import Settings, get_settings
from api.subscriptions import Subscription
from api.validation import NoNulInStrings

log = logging.getLogger("mmos.graphql")


def _root_types() -> tuple[type, type]:
    # Relay node fields are bound to one schema when it is built: each schema gets new roots.
    @strawberry.type
    class Query(SourceQueries, ProcessingQueries, QueueQueries, GraphQueries,
                OptimizationQueries):
        node: relay.Node | None = relay.node(description="Any object by its global ID.")
        nodes: list[relay.Node | None] = relay.node(
            description="Objects by global IDs, in order."
        )

    @strawberry.type
    class Mutation(SourceMutations, ProcessingMutations, GraphMutations, OptimizationMutations):
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


EXTENSIONS: list[Callable[[], Any]] = [
    # Frontends repeat the same documents: parse and validate each distinct one once.
    lambda: ParserCache(maxsize=256),
    lambda: ValidationCache(maxsize=256),
    # Token, depth and alias limits, NUL-free string literals, introspection on or off.
    ConfiguredLimits,
    RoleCheck,
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
