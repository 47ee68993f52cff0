"""A GraphQL client over an httpx client speaking to the app."""

from __future__ import annotations

from typing import Any


class GraphQLClient:
    """Posts GraphQL operations and returns the decoded body."""

    def __init__(self, http: Any) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any] | None = None,
                       *, expect_errors: bool = False, headers: dict[str, str] | None = None
                       ) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query,
                                                          "variables": variables or {}},
                                        headers=headers or {})
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        if not expect_errors:
            assert "errors" not in body, body["errors"]
        return body
