"""Validation rules added to GraphQL's own: what PostgreSQL cannot store never gets executed."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule


class NoNulInStrings(ValidationRule):
    """String literals with a NUL character (\\u0000) are refused before execution (JSON
    variables are checked by the HTTP view)."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if "\x00" in node.value:
            self.report_error(GraphQLError(
                "string values must not contain a NUL character (\\u0000)", node))
