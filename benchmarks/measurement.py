"""Measuring a source: four runs scored against the source's one reference, with the bootstrap
interval of each score and the paired difference of each run against the reference run, on
sources of 20k, 200k and 1M characters. The report gives the time of the whole measurement
and its ratio to scoring alone (the same runs, intervals included, no paired difference),
both timed in one run.

    .venv/bin/python -m benchmarks.measurement [--resamples 1000]
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal


def _evidence(chars: int, seed: int) -> object:
    from domain.evaluation import RunEvidence, SourceEvidence
    from domain.model import Span
    from domain.quality import ScoredFragment

    sentences = chars // 100
    spans = tuple(Span(i * 100, i * 100 + 98) for i in range(sentences))
    chunks = tuple(Span(a, min(chars, a + 6000)) for a in range(0, chars, 6000))
    rng = random.Random(seed)
    runs = []
    for number, (share, price) in enumerate(((0.9, "30"), (0.9, "2"), (0.5, "1"), (0.7, "0.5"))):
        fragments = [ScoredFragment(i * 100 + rng.randint(0, 5), i * 100 + 90, True,
                                    rng.random() < 0.9, True, rng.randint(5, 9),
                                    (i * 100) // 6000)
                     for i in range(sentences) if rng.random() < share]
        runs.append(RunEvidence(number + 1, f"model-{number}", Decimal(price),
                                tuple(fragments), chunks, Decimal("0.5"), 1000))
    text = " ".join("word" for _ in range(chars // 5))
    return SourceEvidence(1, chars, spans, (), (), tuple(runs), text=text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    from domain.evaluation import (
        QualityPolicy,
        _evaluate,
        evaluation_chunks,
        measure_source,
        source_reference,
    )

    policy = QualityPolicy(resamples=args.resamples)
    print(f"measurement benchmark: 4 runs per source, {args.resamples} resamples")
    print("  source chars   chunks   scoring alone s   whole measurement s   ratio")
    for chars in (20_000, 200_000, 1_000_000):
        evidence = _evidence(chars, seed=chars)
        blocks = evaluation_chunks(chars, evidence.sentences)  # type: ignore[attr-defined]
        started = time.perf_counter()
        reference = source_reference(evidence, policy).reference  # type: ignore[arg-type]
        for run in evidence.runs:  # type: ignore[attr-defined]
            _evaluate(run, evidence, reference, blocks, policy)  # type: ignore[arg-type]
        alone = time.perf_counter() - started
        started = time.perf_counter()
        measure_source(evidence, policy)  # type: ignore[arg-type]
        whole = time.perf_counter() - started
        print(f"  {chars:12d}   {len(blocks):6d}   {alone:15.3f}   {whole:19.3f}   "
              f"{whole / alone:5.2f}")


if __name__ == "__main__":
    main()
