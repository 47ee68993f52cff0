"""The README's REST `curl` examples, run verbatim (bar host and port) against `mmos serve`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.database import ADMIN_DSN, reachable, run_admin
from tests.support.serve import INHERITED_SETTINGS, free_port

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
README_BASE = "http://127.0.0.1:8000"


def readme_curls() -> list[str]:
    """The curl commands of the README's REST section, as bash would read them (continuation
    backslashes and multi-line quoted bodies included)."""
    text = README.read_text()
    section = text.split("## REST compatibility", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        current = ""
        for line in block.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            current += line + "\n"
            if current.count("'") % 2 == 0 and not line.endswith("\\"):
                commands.append(current.strip())
                current = ""
    return [c for c in commands if c.startswith("curl ")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`mmos serve` on a fresh database of the machine's PostgreSQL (ids start at 1)."""
    if not reachable(ADMIN_DSN) or shutil.which("curl") is None:
        pytest.skip("needs the PostgreSQL on 127.0.0.1:5432 and curl")
    name = f"mmos_rest_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_admin(ADMIN_DSN, f"CREATE DATABASE {name}"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SETTINGS}
    env.update(DATABASE_URL=f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}", MMOS_ENV="development",
               PYTHONUNBUFFERED="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    logs = tmp_path / "serve.log"
    with logs.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], env=env, cwd=README.parent, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, logs.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, logs.read_text()[-3000:]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        asyncio.run(run_admin(ADMIN_DSN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def curl(command: str, base: str) -> tuple[int, Any]:
    """Run a README command against `base`; returns the HTTP status and the JSON body."""
    line = command.replace(README_BASE, base) + " -w '\\n%{http_code}'"
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60,
                          check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_the_readme_curl_examples_work_against_a_running_server(server: str) -> None:
    create, start, report, refused, savings = readme_curls()
    # Store the source
    status, source = curl(create, server)
    assert status == 201, source
    assert (source["id"], source["source_code"]) == (1, "SRC_001")
    # Start two offline models on it
    status, started = curl(start, server)
    assert status == 202, started
    assert [b["model"] for b in started["batches"]] == ["rules-fast", "rules-thorough"]
    # The report, once both runs are measured
    deadline = time.monotonic() + 90
    while True:
        status, body = curl(report, server)
        assert status == 200, body
        if body["pending_runs"] == 0 and len(body["comparison"]) == 2:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
    assert {e["model"] for e in body["comparison"]} == {"rules-fast", "rules-thorough"}
    for entry in body["comparison"]:
        assert 0 <= entry["quality_low"] <= entry["quality_score"] <= entry["quality_high"]
        assert entry["cost_usd"] == "0"
    assert body["sweet_spot"]["reason"]
    assert body["recommendation"]
    # A model outside the catalog: a field error, nothing started
    status, error = curl(refused, server)
    assert status == 422
    assert error["error"]["fields"][0]["field"] == "models.0"
    # Savings per source type
    status, table = curl(savings, server)
    assert status == 200
    assert table["table"].startswith("| Source Type |")
