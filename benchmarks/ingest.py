"""Ingesting files: each format converted from an input of realistic size (a few MB, and a
50 MB PDF), each in a fresh subprocess, with its time, throughput and peak memory growth.

    .venv/bin/python -m benchmarks.ingest [--quick]

Inputs come from tests/support/documents.py (generated, nothing downloaded) and are written
to a temporary directory first; the child process imports the converters and reads the file,
resets its peak RSS (/proc/self/clear_refs), converts, and reports VmHWM minus the RSS it
had before: the memory the conversion itself took. The acceptance bar: the 50 MB PDF grows
the process by less than 300 MB (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
BAR_MB = 300
_CHILD = r"""
import json, sys, time
from domain.documents import ContentFormat
from workers.converters import Converters

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
data = open(sys.argv[1], "rb").read()
converters = Converters()
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS
except OSError:
    pass
before = max(status("VmRSS"), 0)
started = time.perf_counter()
doc = converters.convert(data, ContentFormat[sys.argv[2]])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "growth_mb": status("VmHWM") - before,
                  "chars": len(doc.text), "segments": len(doc.segments)}))
"""


def _inputs(quick: bool) -> list[tuple[str, str, Callable[[], bytes]]]:
    """(label, format, generator) of each benchmark input."""
    from tests.support import documents as d

    scale = 10 if quick else 1

    def text() -> bytes:
        pool = d.sentences(40_000 // scale)
        return "\n\n".join(" ".join(pool[i:i + 5]) for i in range(0, len(pool), 5)).encode()

    def markdown() -> bytes:
        pool = d.sentences(40_000 // scale)
        parts = []
        for i in range(0, len(pool), 5):
            if i % 100 == 0:
                parts.append(f"{'#' if i % 1000 == 0 else '##'} Part {i // 100}")
            parts.append(" ".join(f"**{s}**" if j == 0 else s
                                  for j, s in enumerate(pool[i:i + 5])))
        return "\n\n".join(parts).encode()

    return [
        ("TEXT", "TEXT", text),
        ("MARKDOWN", "MARKDOWN", markdown),
        ("VTT", "VTT", lambda: d.interview_vtt(cues=40_000 // scale).data),
        ("SRT", "SRT", lambda: d.interview_srt(cues=40_000 // scale).data),
        ("HTML", "HTML", lambda: d.article_html(paragraphs=10_000 // scale).data),
        ("DOCX", "DOCX", lambda: d.report_docx(sections=100 // scale, paragraphs=40,
                                                photos=20 // scale).data),
        ("EPUB", "EPUB", lambda: d.novel_epub(chapters=60 // scale, paragraphs=120,
                                               photos=20 // scale).data),
        ("PDF (text)", "PDF", lambda: d.book_pdf(pages=1_000 // scale).data),
        ("PDF 50 MB", "PDF", lambda: d.book_pdf(pages=345 // scale, photo_side=400).data),
    ]


def _convert(path: Path, fmt: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path), fmt], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="inputs a tenth of the size")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, fmt, generate in _inputs(args.quick):
            started = time.perf_counter()
            data = generate()
            made = time.perf_counter() - started
            path = Path(folder) / f"input-{len(rows)}"
            path.write_bytes(data)
            del data
            rows.append((label, path.stat().st_size / MIB, made, _convert(path, fmt)))
    print("ingest: one fresh process per format; peak RSS growth = VmHWM after - RSS before")
    print(f"  {'format':<12}{'input MB':>9}{'seconds':>9}{'MB/s':>8}{'peak +MB':>10}"
          f"{'chars':>12}{'segments':>10}   (input generated in)")
    for label, size, made, got in rows:
        print(f"  {label:<12}{size:9.2f}{got['seconds']:9.2f}{size / got['seconds']:8.2f}"
              f"{got['growth_mb']:10.1f}{got['chars']:12,}{got['segments']:10,}   ({made:.1f} s)")
    label, size, _, got = rows[-1]
    passed = got["growth_mb"] < BAR_MB
    print(f"{'PASS' if passed else 'FAIL'}: the {size:.1f} MB PDF grew the process by "
          f"{got['growth_mb']:.1f} MB (bar: < {BAR_MB} MB)")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
