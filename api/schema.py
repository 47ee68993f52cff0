"""The Strawberry schema: queries, mutations, subscriptions and the hardening extensions."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import ASTValidationRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
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
from api.settings import Settings
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


class _Active:
    """Settings the schema's extension factories read (the app sets them at creation)."""

    settings: Settings | None = None


def use_settings(settings: Settings) -> None:
    """Apply limits and switches of `settings` to every following operation."""
    _Active.settings = settings


def _settings() -> Settings:
    if _Active.settings is None:
        _Active.settings = Settings()
    return _Active.settings


class _Noop(SchemaExtension):
    pass


def _introspection_switch() -> SchemaExtension:
    return _Noop() if _settings().introspection_enabled else DisableIntrospection()


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


def _validation_rules() -> SchemaExtension:
    settings = _settings()
    return AddValidationRules(list(_limit_rules(settings.max_query_depth, settings.max_aliases)))


EXTENSIONS: list[Callable[[], Any]] = [
    # Frontends repeat the same documents: parse and validate each distinct one once.
    lambda: ParserCache(maxsize=256),
    lambda: ValidationCache(maxsize=256),
    lambda: MaxTokensLimiter(max_token_count=_settings().max_query_tokens),
    # Depth and alias limits, NUL-free string literals.
    _validation_rules,
    _introspection_switch,
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
