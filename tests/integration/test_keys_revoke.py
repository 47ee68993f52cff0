"""`mmos keys revoke` with the whole leaked secret, through the real CLI on the test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.auth import Unauthenticated, authenticate
from tests.support.serve import INHERITED_SETTINGS

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MMOS = REPO_ROOT / ".venv" / "bin" / "mmos"
SECRET = re.compile(r"secret \(shown once, keep it safe\): (\S+)")


def mmos_keys(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mmos keys ...` as a user runs it, with DATABASE_URL pointing at the test database."""
    env = {key: value for key, value in os.environ.items() if key not in INHERITED_SETTINGS}
    env.update(DATABASE_URL=database_url, MMOS_ENV="test", LITELLM_LOCAL_MODEL_COST_MAP="True")
    command = [str(MMOS)] if MMOS.exists() else [sys.executable, "-m", "api.cli"]
    # cwd is a scratch dir so no stray `.env` of a developer reaches the CLI.
    return subprocess.run([*command, "keys", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def create_key(database_url: str, cwd: Path, name: str, role: str = "operator") -> str:
    created = mmos_keys(database_url, cwd, "create", "--role", role, "--name", name)
    assert created.returncode == 0, created.stderr
    match = SECRET.search(created.stdout)
    assert match, created.stdout
    return match.group(1)


async def authenticates(runtime: Any, secret: str) -> bool:
    try:
        await authenticate(runtime, secret, required=True)
    except Unauthenticated:
        return False
    return True


async def test_revoking_by_the_whole_secret_stops_that_key_only(
    db: Any, database_url: str, tmp_path: Path
) -> None:
    # Given: two keys made with the CLI, both working
    leaked = create_key(database_url, tmp_path, "leaked")
    other = create_key(database_url, tmp_path, "other")
    assert await authenticates(db, leaked) and await authenticates(db, other)
    # When: the pasted token is revoked
    revoked = mmos_keys(database_url, tmp_path, "revoke", leaked)
    # Then
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "revoked 1 key(s)"
    assert leaked not in revoked.stdout + revoked.stderr  # the secret is never echoed or logged
    assert not await authenticates(db, leaked)
    assert await authenticates(db, other)
    listed = mmos_keys(database_url, tmp_path, "list")
    states = {line.split("\t")[-1]: line.split("\t")[3] for line in listed.stdout.splitlines()}
    assert states == {"leaked": "revoked", "other": "active"}
    assert leaked not in listed.stdout
    # And: revoking it again finds no active key
    again = mmos_keys(database_url, tmp_path, "revoke", leaked)
    assert again.returncode == 1


async def test_a_secret_that_does_not_verify_revokes_nothing(
    db: Any, database_url: str, tmp_path: Path
) -> None:
    # Given: a key, and a token with its prefix but another secret part
    secret = create_key(database_url, tmp_path, "kept", role="viewer")
    _, prefix, tail = secret.split("_")
    forged = f"mmos_{prefix}_{'A' * len(tail)}"
    # When
    refused = mmos_keys(database_url, tmp_path, "revoke", forged)
    # Then: nothing revoked, the real key still works
    assert refused.returncode == 1, refused.stdout
    assert await authenticates(db, secret)
    # ... while the prefix alone still revokes it, as before
    by_prefix = mmos_keys(database_url, tmp_path, "revoke", prefix)
    assert by_prefix.returncode == 0 and by_prefix.stdout.strip() == "revoked 1 key(s)"
    assert not await authenticates(db, secret)
