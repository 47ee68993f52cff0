"""`mmos demo` as a newcomer runs it, in its own process on a database of its own: every score
and interval shows the same digits in the table and in the sentence under it (one rounding)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_the_demo_table_and_its_sentence_show_the_same_digits(throwaway_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(DATABASE_URL=throwaway_url, COLUMNS="200", LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, "-m", "api.cli", "demo"], env=env, text=True,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    reports = out.split("Optimization report: ")[1:]
    assert len(reports) == 3  # two interviews and the podcast transcript
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
    # The transcript: the subject's fragments, with the speaker and the time range of each.
    said = re.search(r"rules-thorough found (\d+) fragments in the subject's own words", out)
    assert said is not None and int(said.group(1)) > 0, out[-3000:]
    assert re.search(r"Margaret Lindqvist, 00:00:\d\d-00:00:\d\d: '", out), out[-3000:]
