"""Domain errors: bad input, missing things, conflicts. The API maps them to typed payloads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one input field; `path` is the field path, e.g. ("input", "title")."""

    path: tuple[str, ...]
    message: str


class DomainError(Exception):
    """Base of errors whose message is safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """One or more fields are invalid; nothing was written."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        super().__init__("; ".join(f"{'.'.join(i.path)}: {i.message}" for i in issues))
        self.issues = issues

    @classmethod
    def single(cls, path: tuple[str, ...], message: str) -> InvalidInput:
        return cls([FieldIssue(path, message)])


class NotFound(DomainError):
    """The thing asked for does not exist."""

    def __init__(self, kind: str, key: object, path: tuple[str, ...] = ()) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = str(key)
        self.path = path


class Conflict(DomainError):
    """The change clashes with existing state (duplicate code, duplicate content, wrong state)."""

    def __init__(self, message: str, path: tuple[str, ...] = (), existing_id: str | None = None):
        super().__init__(message)
        self.path = path
        self.existing_id = existing_id


class PermissionDenied(DomainError):
    """The caller's role does not allow this operation."""
