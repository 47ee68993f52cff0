"""`mmos demo` as a newcomer runs it, in its own process on a database of its own: every score
and interval shows the same digits in the table and in the sentence under it (one rounding)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.integration.test_migrations import _admin


@pytest.fixture
def demo_url(database_url: str) -> Iterator[str]:
    name = f"mmos_demo_{uuid.uuid4().hex[:10]}"
    session = make_url(database_url)
    admin = session.set(database="postgres")
    asyncio.run(_admin(admin, f"CREATE DATABASE {name}"))
    try:
        yield session.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_the_demo_table_and_its_sentence_show_the_same_digits(demo_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(DATABASE_URL=demo_url, COLUMNS="200", LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, "-m", "api.cli", "demo"], env=env, text=True,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    reports = out.split("Optimization report: ")[1:]
    assert len(reports) == 2
    for report in reports:
        rows = {m: tuple(v) for m, *v in re.findall(
            r"│ (rules-\w+)[^│]*│\s+([\d.]+) │\s+([\d.]+-[\d.]+) │", report)}
        assert set(rows) == {"rules-fast", "rules-thorough"}, report
        sentence = re.search(r"Use (rules-\w+): .*?: ([\d.]+) \(interval ([\d.]+-[\d.]+)\)",
                             report.replace("\n", " "))
        assert sentence is not None, report
        model, score, interval = sentence.groups()
        assert rows[model] == (score, interval)
        assert all(re.fullmatch(r"\d+\.\d\d", s) for s, _ in rows.values())
