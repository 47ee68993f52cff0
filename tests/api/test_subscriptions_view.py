"""The GraphQL view's side of subscriptions: the WebSocket auth hook (`connection_init` payloads
reach it; a refusal closes with 4403) and subscriptions refused over plain HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.exceptions import ConnectionRejectionError

from api.app import GraphQLView
from api.context import Context, Principal
from domain.errors import PermissionDenied


@pytest.fixture
def view(settings: Any) -> GraphQLView:
    return GraphQLView(settings)


def connecting(runtime: Any, payload: dict[str, Any]) -> Context:
    """A connection's context as Strawberry leaves it after `connection_init`."""
    context = Context(runtime=runtime)
    context.connection_params = payload
    return context


async def test_the_hook_receives_the_payload_and_its_principal_is_the_callers(
        view: GraphQLView, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: a hook that names the caller after the presented key
    received: list[dict[str, Any]] = []

    async def hook(params: dict[str, Any], rt: Any) -> Principal:
        received.append(dict(params))
        return Principal(str(params["apiKey"]), "viewer")

    monkeypatch.setattr("api.app.authenticate_connection", hook)
    context = connecting(runtime, {"apiKey": "team-a"})
    # When
    await view.on_ws_connect(context)
    # Then
    assert received == [{"apiKey": "team-a"}]
    assert context.principal == Principal("team-a", "viewer")
    assert context.connection_params == {"apiKey": "team-a"}


async def test_a_hook_that_refuses_rejects_the_connection(
        view: GraphQLView, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hook(params: dict[str, Any], rt: Any) -> Principal:
        raise PermissionDenied("an API key is required")

    monkeypatch.setattr("api.app.authenticate_connection", hook)
    with pytest.raises(ConnectionRejectionError) as rejected:
        await view.on_ws_connect(connecting(runtime, {}))
    assert rejected.value.payload == {"message": "an API key is required"}


async def test_for_now_every_connection_is_accepted_as_the_local_operator(
        view: GraphQLView, runtime: Any) -> None:
    context = connecting(runtime, {"anything": True})
    await view.on_ws_connect(context)
    assert context.principal == Principal("local", "operator")


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_subscription_over_http_is_a_client_error_naming_the_websocket(
        client: Any, method: str) -> None:
    # When
    query = "subscription { queueStatus { at } }"
    response = await (client.post("/graphql", json={"query": query}) if method == "POST"
                      else client.get("/graphql", params={"query": query}))
    # Then
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert "over WebSocket (graphql-transport-ws)" in body["errors"][0]["message"]


async def test_a_document_with_a_subscription_still_runs_its_named_query_over_http(
        gql: Any) -> None:
    response = await gql.http.post("/graphql", json={
        "query": "subscription S { queueStatus { at } } query Q { queueStatus { waiting } }",
        "operationName": "Q"})
    assert response.json() == {"data": {"queueStatus": {"waiting": 0}}}
