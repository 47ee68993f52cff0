"""Access control: API keys with roles, required in production or beyond loopback."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import FieldNode, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from api.errors import PublicError

if TYPE_CHECKING:
    from api.ratelimit import LocalRateLimiter, RedisRateLimiter

ROLE_RANK = {"viewer": 1, "editor": 2, "operator": 3}

# Mutations an editor may run (curating sources and the fragment graph). Every other mutation
# (processing, models, budgets, thresholds, and any new one) needs an operator: fail closed.
EDITOR_MUTATIONS = frozenset({
    "createSource", "updateSource", "deleteSource", "importSources",
    "tagFragments", "untagFragments", "relateFragments", "unrelateFragments",
    "verifyFragment", "reviewFragments", "importReferenceFragments",
})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or the local developer."""

    name: str
    role: str
    # The key's rate-limit identity, `<id>:<prefix>`; None for the local developer.
    key_id: str | None = None

    def allows(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


LOCAL_DEVELOPER = Principal("local", "operator")


class Unauthenticated(Exception):
    """No valid key where one is required."""


def keys_required(settings: Any, bound_host: str | None = None) -> bool:
    """Keys are required in production and whenever the server listens beyond loopback."""
    return bool(settings.is_production or settings.binds_beyond_loopback(bound_host))


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (case-insensitive)."""
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_from_payload(payload: Mapping[str, Any] | None) -> str | None:
    """A key from a WebSocket `connection_init` payload: {"Authorization": "Bearer …"} or
    {"apiKey": "…"} (GraphiQL sends its header editor's headers as the payload)."""
    if not isinstance(payload, Mapping):
        return None
    for name in ("Authorization", "authorization"):
        if isinstance(payload.get(name), str):
            return bearer_token({"authorization": payload[name]})
    for name in ("apiKey", "api_key"):
        if isinstance(payload.get(name), str):
            return str(payload[name]).strip() or None
    return None


async def authenticate(runtime: Any, token: str | None, *, required: bool,
                       limiter: LocalRateLimiter | RedisRateLimiter | None = None
                       ) -> Principal:
    """Resolve a token to a principal; raises Unauthenticated when one is required and absent
    or when a given token is not valid (a wrong key is never silently ignored). With a
    `limiter`, the request counts against its key's rate limit (api/ratelimit.py) and
    RateLimited is raised when it is over; keyless requests are never limited."""
    if token is None:
        if required:
            raise Unauthenticated("an API key is required: send `Authorization: Bearer <key>`")
        return LOCAL_DEVELOPER
    from db.keys import KeyRepository

    async with runtime.transaction() as session:
        key = await KeyRepository(session).verify(token[:200])
    if key is None:
        raise Unauthenticated("the API key is not valid or has been revoked")
    principal = Principal(f"key:{key.name}", key.role, key_id=f"{key.id}:{key.prefix}")
    if limiter is not None:
        await limiter.enforce(principal.key_id or "")
    return principal


def required_role(operation: OperationDefinitionNode) -> str:
    """The least role that may run this operation."""
    if operation.operation != OperationType.MUTATION:
        return "viewer"
    names = [selection.name.value for selection in operation.selection_set.selections
             if isinstance(selection, FieldNode)]
    if names and all(name in EDITOR_MUTATIONS or name == "__typename" for name in names):
        return "editor"
    return "operator"


class RoleCheck(SchemaExtension):
    """Refuses operations above the caller's role with a FORBIDDEN error, before execution."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        operation = _operation(self.execution_context)
        principal = getattr(context, "principal", None)
        if operation is not None and isinstance(principal, Principal):
            role = required_role(operation)
            if not principal.allows(role):
                raise PublicError(
                    f"this operation needs the {role} role; your key has {principal.role}",
                    code="FORBIDDEN")
        yield


def _operation(execution_context: Any) -> OperationDefinitionNode | None:
    document = execution_context.graphql_document
    if document is None:
        return None
    wanted = execution_context.operation_name
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if wanted is None or (operation.name and operation.name.value == wanted):
            return operation
    return None
