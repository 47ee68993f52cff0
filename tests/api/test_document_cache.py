"""Repeated documents are parsed and validated once (the limits stay in force)."""

from __future__ import annotations

from strawberry.extensions.validation_cache import _get_validate_cache

from api.schema import schema


async def test_a_repeated_document_is_validated_once() -> None:
    # Given
    cached = _get_validate_cache(256)
    query = "query Cached { __typename }"
    await schema.execute(query)
    before = cached.cache_info()
    # When
    result = await schema.execute(query)
    # Then
    after = cached.cache_info()
    assert not result.errors
    assert after.hits == before.hits + 1 and after.misses == before.misses


async def test_the_cached_rules_still_enforce_the_depth_limit() -> None:
    # Given: deeper than the default limit of the settings
    deep = "{ sources { edges { node { fragments { edges { node { source { fragments {" \
           " edges { node { source { fragments { edges { node { id } } } } } } } } } } } } } } }"
    # When
    first, second = await schema.execute(deep), await schema.execute(deep)
    # Then
    for result in (first, second):
        assert result.errors and "exceeds maximum operation depth" in result.errors[0].message
