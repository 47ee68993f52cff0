"""Errors as data: the typed members of every mutation's union payload."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.relay import GlobalIDValueError

from domain.errors import Conflict as ConflictError
from domain.errors import DomainError, InvalidInput
from domain.errors import NotFound as NotFoundError
from domain.errors import PermissionDenied as PermissionDeniedError

log = logging.getLogger("mmos.api")


@strawberry.type(description="One invalid input field.")
class FieldError:
    path: list[str] = strawberry.field(description="Path of the field, e.g. ['input', 'title'].")
    field: str = strawberry.field(description="The path joined with dots.")
    message: str


@strawberry.type(description="The input was invalid; nothing was written.")
class ValidationError:
    message: str
    field_errors: list[FieldError]


@strawberry.type(description="Something the operation refers to does not exist.")
class NotFound:
    message: str
    kind: str
    id: str
    field: str | None


@strawberry.type(description="The change clashes with existing state; nothing was written.")
class Conflict:
    message: str
    field: str | None
    existing_id: str | None


@strawberry.type(description="The caller's API key does not allow this operation.")
class PermissionDenied:
    message: str
    required_role: str | None


def as_payload(exc: DomainError) -> ValidationError | NotFound | Conflict | PermissionDenied:
    """Map a domain error to the payload member a client can branch on."""
    if isinstance(exc, InvalidInput):
        fields = [FieldError(path=list(i.path), field=".".join(i.path), message=i.message)
                  for i in exc.issues]
        return ValidationError(message=exc.message, field_errors=fields)
    if isinstance(exc, NotFoundError):
        return NotFound(message=exc.message, kind=exc.kind, id=exc.key,
                        field=".".join(exc.path) or None)
    if isinstance(exc, ConflictError):
        return Conflict(message=exc.message, field=".".join(exc.path) or None,
                        existing_id=exc.existing_id)
    if isinstance(exc, PermissionDeniedError):
        return PermissionDenied(message=exc.message, required_role=getattr(exc, "role", None))
    return ValidationError(message=exc.message, field_errors=[])


class PublicError(GraphQLError):
    """An error whose message is meant for the client (never masked)."""

    def __init__(self, message: str, *, code: str = "BAD_USER_INPUT",
                 field: str | None = None) -> None:
        extensions: dict[str, object] = {"code": code}
        if field:
            extensions["field"] = field
        super().__init__(message, extensions=extensions)


def public(exc: DomainError) -> PublicError:
    """Turn a domain error raised by a query into a top-level GraphQL error."""
    if isinstance(exc, InvalidInput) and exc.issues:
        first = exc.issues[0]
        return PublicError(exc.message, field=".".join(first.path))
    if isinstance(exc, NotFoundError):
        return PublicError(exc.message, code="NOT_FOUND", field=".".join(exc.path) or None)
    if isinstance(exc, PermissionDeniedError):
        return PublicError(exc.message, code="FORBIDDEN")
    return PublicError(exc.message)


def should_mask_error(error: GraphQLError) -> bool:
    """Let through GraphQL's own errors (syntax, validation) and public ones; mask the rest."""
    original = error.original_error
    if original is None or isinstance(original, (GraphQLError, DomainError,
                                                 GlobalIDValueError)):
        return False
    log.error("unexpected error in %s", error.path, exc_info=original)
    return True
