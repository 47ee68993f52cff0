"""Reading model answers: the cost of `domain.parsing.parse_answer` per answer shape, as a ratio
to the standard library's `json.loads` of the same fragments measured in the same run (the
floor any reader pays), on a fifteen-fragment answer of about 5 KB, the size of a chunk's.

    .venv/bin/python -m benchmarks.answer_reading [--repeat 2000]

Shapes: the strict answer, a fenced block after prose, a bare array, a wrapper object, numbers
as strings, JSON repaired with json-repair (trailing commas and a comment). A provider call
takes hundreds of milliseconds; the report shows what reading adds to each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from domain.parsing import parse_answer


def _fragment(i: int) -> dict[str, Any]:
    sentence = (f"I started painting when I was {i + 3} years old because it helped me think "
                f"clearly about my work.")
    return {"content": sentence, "quote": sentence, "category": "cognitive",
            "subcategory": "", "fragment_type": "direct_quote", "context": "",
            "insight": f"Statement {i + 1} of the speaker.", "relevance": 7, "confidence": 0.9,
            "tags": ["habit", "work"]}


def _shapes(fragments: list[dict[str, Any]]) -> dict[str, str]:
    body = {"fragments": fragments}
    stringly = [{**f, "relevance": str(f["relevance"]), "confidence": "90%"} for f in fragments]
    broken = json.dumps(body, indent=1).replace("\n]", ",\n]")
    return {
        "strict": json.dumps(body),
        "fenced after prose": f"Here they are:\n```json\n{json.dumps(body)}\n```",
        "bare array": json.dumps(fragments),
        "wrapper object": json.dumps({"data": body}),
        "numbers as strings": json.dumps({"fragments": stringly}),
        "repaired (json-repair)": "// fragments\n" + broken,
    }


def _per_call(work: Callable[[], Any], repeat: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            work()
        rounds.append((time.perf_counter() - started) / repeat)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    fragments = [_fragment(i) for i in range(15)]
    strict = json.dumps({"fragments": fragments})
    floor = _per_call(lambda: json.loads(strict), args.repeat)
    print(f"answer reading benchmark: 15 fragments, {len(strict)} characters, "
          f"{args.repeat} reads x 5 rounds, medians")
    print(f"  json.loads of the strict answer: {floor * 1e6:8.1f} us")
    print(f"  {'shape':26} {'parse_answer us':>16} {'x json.loads':>13} {'fragments':>10}")
    for name, text in _shapes(fragments).items():
        answer = parse_answer(text)
        cost = _per_call(lambda text=text: parse_answer(text), args.repeat)  # type: ignore[misc]
        print(f"  {name:26} {cost * 1e6:16.1f} {cost / floor:13.1f} {len(answer.fragments):10}")


if __name__ == "__main__":
    main()
