"""schema.graphql in the repository is the served schema, as `mmos export-schema` prints it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from strawberry.printer import print_schema

from api.schema import schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema.graphql"
HOW_TO_FIX = "schema.graphql is stale; regenerate it with: mmos export-schema > schema.graphql"


def test_committed_schema_file_matches_the_served_schema() -> None:
    # Given
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    # When
    printed = print_schema(schema)
    # Then
    assert committed == printed, HOW_TO_FIX


def test_export_schema_command_prints_the_committed_schema() -> None:
    # When
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "export-schema"],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
    )
    # Then
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.decode("utf-8") == SCHEMA_FILE.read_text(encoding="utf-8"), HOW_TO_FIX
