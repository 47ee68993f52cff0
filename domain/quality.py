"""Quality of one run, measured from evidence: grounding, MIU checks, agreement, coverage.

Self-reported relevance and confidence are not quality (a model that flatters itself would
win), so the score rests on what can be checked against the source and a reference.

Conventions, decided once here and relied on by reports:

- Rates over an empty run (no fragments) are 0.0: a run that yields nothing earns nothing.
- Agreement (precision, recall, F1) matches grounded fragments one-to-one to reference spans,
  greedily by best IoU (>= 0.5 by default). Ungrounded fragments have no place in the source, so
  they are false positives. When both sides are empty, precision = recall = F1 = 1.0 (nothing to
  find, nothing invented); when only one side is empty, all three are 0.0.
- With a verified reference, rejected spans are match targets too: a prediction is judged by the
  reference span it resembles most, so one that is closer to a rejected fragment than to a
  verified one is a false positive even if it also overlaps the verified one. On an exact IoU tie
  the rejected span wins (a human refused that shape). Rejected spans are never "missed".
- Coverage counts the non-empty sentences touched by at least one grounded fragment. It enters
  the score relative to the reference's coverage; with no reference, the raw coverage is used.
- One reference per source: every run of a source, the reference model's own run included, is
  measured against the same reference by the same rule (domain/evaluation.py chooses it), so
  identical fragments score identically whatever model made them. The reference run itself
  scores F1 = 1 against itself; that is the rule applied, not a privilege.
- Scores and interval bounds are rounded once, here, to two decimals (half-even): every report,
  sentence and comparison uses that one value, so the same number shows the same digits
  everywhere and a threshold is met or missed by the number people see.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, TypeVar

from domain.model import Span

ReferenceKind = Literal["verified", "reference_model", "consensus", "none"]

DEFAULT_IOU_THRESHOLD = 0.5
SCORE_DECIMALS = 2
_SCORE_STEP = Decimal(1).scaleb(-SCORE_DECIMALS)

T = TypeVar("T")


def round_score(value: float) -> float:
    """A score or bound as every report shows it: two decimals, half-even, decided once.

    Rounding the decimal text of the float (not its binary value) makes 8.945 round the way a
    person reading "8.945" expects under the rule, on every platform.
    """
    if not math.isfinite(value):
        raise ValueError(f"score {value} is not finite")
    return float(Decimal(repr(value)).quantize(_SCORE_STEP, rounding=ROUND_HALF_EVEN))


def format_score(value: float) -> str:
    """The one text form of a score: its rounded value with two decimals."""
    return f"{round_score(value):.{SCORE_DECIMALS}f}"


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoredFragment:
    """One fragment of a run as quality sees it; the flags come from grounding and MIU lint."""

    start: int | None
    end: int | None
    grounded: bool
    is_complete: bool
    has_clean_boundaries: bool
    relevance: int
    chunk_index: int

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a fragment span needs both start and end, or neither")
        if self.start is not None and self.end is not None:
            Span(self.start, self.end)  # validates the bounds
        if self.grounded and self.start is None:
            raise ValueError("a grounded fragment must carry its span")
        if not 0 <= self.relevance <= 10:
            raise ValueError(f"relevance {self.relevance} is outside 0-10")
        if self.chunk_index < 0:
            raise ValueError(f"negative chunk index {self.chunk_index}")

    @property
    def span(self) -> Span | None:
        """The span in the source, only for grounded fragments."""
        if not self.grounded or self.start is None or self.end is None:
            return None
        return Span(self.start, self.end)

    @property
    def is_miu(self) -> bool:
        """True when the fragment passes both MIU checks."""
        return self.is_complete and self.has_clean_boundaries


@dataclass(frozen=True, slots=True)
class Reference:
    """What a run is compared with; `consensus_of` names the models behind a consensus."""

    kind: ReferenceKind
    spans: tuple[Span, ...]
    rejected: tuple[Span, ...] = ()
    model: str | None = None
    consensus_of: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "none" and self.spans:
            raise ValueError("'none' reference cannot carry spans")
        if self.rejected and self.kind != "verified":
            raise ValueError("only a verified reference carries rejected spans")
        if (self.kind == "reference_model") != (self.model is not None):
            raise ValueError("a model name goes with, and only with, a reference_model reference")
        if self.consensus_of and self.kind != "consensus":
            raise ValueError("consensus_of only describes a consensus reference")

    @property
    def exists(self) -> bool:
        """False when there is nothing to compare with (the score is then provisional)."""
        return self.kind != "none"


NO_REFERENCE = Reference(kind="none", spans=())


# --- simple rates ---------------------------------------------------------------------------


def grounded_rate(frags: Sequence[ScoredFragment]) -> float:
    """Grounded fragments / fragments (0.0 for an empty run)."""
    return _share(sum(f.grounded for f in frags), len(frags))


def miu_rate(frags: Sequence[ScoredFragment]) -> float:
    """Fragments passing both MIU checks / fragments (0.0 for an empty run)."""
    return _share(sum(f.is_miu for f in frags), len(frags))


def mean_relevance(frags: Sequence[ScoredFragment]) -> float:
    """Mean self-reported relevance on its 0-10 scale (0.0 for an empty run)."""
    return _share(sum(f.relevance for f in frags), len(frags))


def _share(part: float, whole: int) -> float:
    return part / whole if whole else 0.0


# --- agreement ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Counts of a one-to-one span matching; `rejected_hits` are false positives on rejected."""

    tp: int
    fp: int
    fn: int
    rejected_hits: int = 0

    @property
    def precision(self) -> float:
        if self.tp + self.fp == 0:
            return 1.0 if self.fn == 0 else 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        if self.tp + self.fn == 0:
            return 1.0 if self.fp == 0 else 0.0
        return self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


class _SpanIndex:
    """Finds the spans that overlap a given one without comparing it with every span.

    IoU is 0 without overlap, so matching and clustering only ever need overlapping pairs;
    comparing all pairs made a long source (thousands of fragments per run) quadratic.
    """

    def __init__(self, spans: Sequence[Span]) -> None:
        self._order = sorted(range(len(spans)), key=lambda i: (spans[i].start, i))
        self._starts = [spans[i].start for i in self._order]
        self._spans = spans
        self._longest = max((s.length for s in spans), default=0)

    def overlapping(self, span: Span) -> list[int]:
        """Indices of the spans overlapping `span`, in ascending index order."""
        if not span.length:
            return []
        # Anything starting before span.start - longest ends before span.start.
        lo = bisect_left(self._starts, span.start - self._longest)
        hi = bisect_left(self._starts, span.end)
        found = [self._order[k] for k in range(lo, hi)
                 if self._spans[self._order[k]].end > span.start]
        return sorted(found)


@dataclass(frozen=True, slots=True)
class _Assignment:
    matched: tuple[bool, ...]  # per prediction: matched a reference span
    on_rejected: tuple[bool, ...]  # per prediction: matched a rejected span
    found: tuple[bool, ...]  # per reference span: matched by some prediction


def _assign(
    predicted: Sequence[Span],
    spans: Sequence[Span],
    rejected: Sequence[Span],
    iou_threshold: float,
) -> _Assignment:
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"IoU threshold {iou_threshold} is outside (0, 1]")
    targets = [*spans, *rejected]
    index = _SpanIndex(targets)
    pairs: list[tuple[float, int, int, int]] = []
    for p, pred in enumerate(predicted):
        for t in index.overlapping(pred):
            iou = pred.iou(targets[t])
            if iou >= iou_threshold:
                rejected_first = 0 if t >= len(spans) else 1
                pairs.append((-iou, rejected_first, p, t))
    pairs.sort()  # best IoU first; indices make ties deterministic
    target_of: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, p, t in pairs:
        if p not in target_of and t not in taken:
            target_of[p] = t
            taken.add(t)
    targets_hit = [target_of.get(p) for p in range(len(predicted))]
    return _Assignment(
        matched=tuple(t is not None and t < len(spans) for t in targets_hit),
        on_rejected=tuple(t is not None and t >= len(spans) for t in targets_hit),
        found=tuple(t in taken for t in range(len(spans))),
    )


def match_spans(
    predicted: Sequence[Span],
    reference: Sequence[Span],
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    *,
    rejected: Sequence[Span] = (),
) -> MatchResult:
    """One-to-one greedy matching by best IoU; matches on `rejected` are false positives."""
    a = _assign(predicted, reference, rejected, iou_threshold)
    tp = sum(a.matched)
    return MatchResult(
        tp=tp,
        fp=len(predicted) - tp,
        fn=len(reference) - tp,
        rejected_hits=sum(a.on_rejected),
    )


# --- the reference --------------------------------------------------------------------------


def consensus_spans(
    runs: Mapping[str, Sequence[Span]], iou_threshold: float = DEFAULT_IOU_THRESHOLD
) -> tuple[Span, ...]:
    """Spans found by at least two different models, one representative per cluster.

    Spans are taken in source order and join the cluster whose anchor (first span) they overlap
    best with IoU >= threshold, at most one span per model per cluster. A cluster backed by two
    or more models yields its medoid: the member span with the highest total IoU to the others
    (ties: earliest, then shortest). A medoid is a span some model really produced and every
    member agrees with; a union would grow with each disagreement.
    """
    items = sorted(
        {(s.start, s.end, model) for model, spans in runs.items() for s in spans},
    )
    clusters: list[tuple[Span, dict[str, Span]]] = []  # (anchor, span per model)
    anchor_starts: list[int] = []  # non-decreasing: spans arrive in source order
    longest = 0
    for start, end, model in items:
        span = Span(start, end)
        best: dict[str, Span] | None = None
        best_iou = 0.0
        # Anchors starting more than the longest anchor before this span cannot overlap it.
        first = bisect_left(anchor_starts, start - longest)
        for anchor, members in clusters[first:]:
            iou = anchor.iou(span)
            # Strictly better only: on a tie the earlier cluster keeps the span.
            if model not in members and iou >= iou_threshold and iou > best_iou:
                best, best_iou = members, iou
        if best is None:
            clusters.append((span, {model: span}))
            anchor_starts.append(start)
            longest = max(longest, span.length)
        else:
            best[model] = span
    medoids = {_medoid(list(m.values())) for _, m in clusters if len(m) >= 2}
    return _ordered(medoids)


def _medoid(members: Sequence[Span]) -> Span:
    def key(i: int) -> tuple[float, int, int]:
        s = members[i]
        return (-sum(s.iou(o) for j, o in enumerate(members) if j != i), s.start, s.end)

    return members[min(range(len(members)), key=key)]


def choose_reference(
    verified: Sequence[Span],
    rejected: Sequence[Span],
    min_verified: int,
    reference_model_run: tuple[str, Sequence[Span]] | None,
    other_runs: Mapping[str, Sequence[Span]],
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
) -> Reference:
    """The reference, in order: verified fragments, the reference model's run, consensus, none.

    The caller passes every run of the source (one per model): the one reference is the same
    for all of them. A reference model's run with
    no spans is still a reference (that model found nothing); a consensus with no agreed span is
    not (absence of agreement is no evidence), so it falls through to "none".
    """
    if min_verified < 1:
        raise ValueError("min_verified must be at least 1")
    if len(verified) >= min_verified:
        return Reference("verified", _ordered(verified), rejected=_ordered(rejected))
    if reference_model_run is not None:
        model, spans = reference_model_run
        return Reference("reference_model", _ordered(spans), model=model)
    agreed = consensus_spans(other_runs, iou_threshold)
    if agreed:
        return Reference("consensus", agreed, consensus_of=tuple(sorted(other_runs)))
    return NO_REFERENCE


def _ordered(spans: Iterable[Span]) -> tuple[Span, ...]:
    return tuple(sorted(spans, key=lambda s: (s.start, s.end)))


# --- coverage ---------------------------------------------------------------------------------


class _Cover:
    """The union of some spans, answering 'does this span overlap any of them' in O(log n)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        merged: list[list[int]] = []
        for s in sorted((s for s in spans if s.length), key=lambda s: s.start):
            if merged and s.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], s.end)
            else:
                merged.append([s.start, s.end])
        self._starts = [a for a, _ in merged]
        self._ends = [b for _, b in merged]

    def touches(self, span: Span) -> bool:
        # Merged intervals are disjoint and sorted, so the first one ending after span.start is
        # the only candidate for an overlap.
        i = bisect_right(self._ends, span.start)
        return bool(span.length) and i < len(self._ends) and self._starts[i] < span.end


def coverage(grounded_spans: Iterable[Span], sentences: Sequence[Span]) -> float:
    """Share of the non-empty sentences overlapped by at least one span (0.0 without sentences)."""
    cover = _Cover(grounded_spans)
    real = [s for s in sentences if s.length]
    return _share(sum(cover.touches(s) for s in real), len(real))


def coverage_ratio(run_cov: float, ref_cov: float) -> float:
    """Run coverage relative to the reference's, capped at 1.0 (any coverage of nothing is 1.0)."""
    if ref_cov <= 0:
        return 1.0 if run_cov > 0 else 0.0
    return min(1.0, run_cov / ref_cov)


# --- the score ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QualityWeights:
    """Weights of the score's terms; the non-F1 ones must leave a score without a reference."""

    f1: float = 0.40
    grounded: float = 0.25
    miu: float = 0.15
    coverage: float = 0.10
    relevance: float = 0.10

    def __post_init__(self) -> None:
        values = (self.f1, self.grounded, self.miu, self.coverage, self.relevance)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("quality weights must be finite and non-negative")
        # Checked at configuration time so that a source with no reference never finds the
        # score undefined halfway through a batch.
        if sum(values[1:]) <= 0:
            raise ValueError("the weights other than f1 must sum to more than 0")


DEFAULT_WEIGHTS = QualityWeights()


@dataclass(frozen=True, slots=True)
class QualityComponents:
    """The score's inputs, each in [0, 1]; f1 is None when there is no reference."""

    f1: float | None
    grounded_rate: float
    miu_rate: float
    coverage_ratio: float
    relevance: float  # mean relevance / 10

    def __post_init__(self) -> None:
        for name in ("f1", "grounded_rate", "miu_rate", "coverage_ratio", "relevance"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is outside [0, 1]")

    @property
    def provisional(self) -> bool:
        """True when the score lacks the agreement term."""
        return self.f1 is None


def quality_score(
    components: QualityComponents, weights: QualityWeights = DEFAULT_WEIGHTS
) -> float:
    """10 x weighted mean of the components; without F1 the other weights renormalise."""
    terms = [
        (weights.grounded, components.grounded_rate),
        (weights.miu, components.miu_rate),
        (weights.coverage, components.coverage_ratio),
        (weights.relevance, components.relevance),
    ]
    if components.f1 is not None:
        terms.append((weights.f1, components.f1))
    total_weight = sum(w for w, _ in terms)  # > 0: QualityWeights guarantees it
    mean = sum(w * v for w, v in terms) / total_weight
    return min(10.0, max(0.0, 10.0 * mean))  # clamp float round-off, e.g. 10.000000000000002


# --- uncertainty --------------------------------------------------------------------------------


def bootstrap_interval(
    per_chunk: Sequence[T],
    statistic: Callable[[Sequence[T]], float],
    *,
    n: int = 1000,
    confidence: float = 0.90,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic` over `n` resamples of the chunks, with replacement.

    Deterministic for a given seed. With fewer than two chunks there is nothing to resample and
    the interval is the point estimate on both ends.
    """
    if n < 1:
        raise ValueError("bootstrap needs at least one resample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is outside (0, 1)")
    if len(per_chunk) < 2:
        point = statistic(per_chunk)
        return point, point
    rng = random.Random(seed)
    k = len(per_chunk)
    values = sorted(statistic(rng.choices(per_chunk, k=k)) for _ in range(n))
    tail = (1 - confidence) / 2
    return _percentile(values, tail), _percentile(values, 1 - tail)


def _percentile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default method).
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --- one run --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkTally:
    """Additive evidence of one chunk; the sum over chunks gives the run's components."""

    fragments: int = 0
    grounded: int = 0
    miu: int = 0
    relevance_sum: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    rejected_hits: int = 0
    sentences: int = 0
    run_touched: int = 0
    ref_touched: int = 0

    def __add__(self, other: ChunkTally) -> ChunkTally:
        return ChunkTally(*map(int.__add__, self.as_tuple(), other.as_tuple()))

    def as_tuple(self) -> tuple[int, ...]:
        """The counts in field order (cheaper than dataclasses.astuple, which deep-copies)."""
        return tuple(getattr(self, name) for name in _TALLY_FIELDS)


_TALLY_FIELDS = tuple(f.name for f in fields(ChunkTally))


def _total(tallies: Iterable[ChunkTally]) -> ChunkTally:
    return sum(tallies, ChunkTally())


@dataclass(frozen=True, slots=True)
class RunQuality:
    """Everything a report shows about one run's quality, not just the number."""

    score: float
    low: float
    high: float
    provisional: bool
    components: QualityComponents
    match: MatchResult | None
    coverage: float
    reference_coverage: float | None
    mean_relevance: float
    reference_kind: ReferenceKind
    reference_model: str | None
    fragments: int
    grounded_fragments: int
    miu_fragments: int
    chunks: int
    sentences: int
    # Per evaluation chunk, the additive counts (ChunkTally field order): what a paired
    # comparison resamples, stored with the measurement.
    tallies: tuple[tuple[int, ...], ...] = ()


class _ChunkOwner:
    """Assigns a source position to the last chunk starting at or before it."""

    def __init__(self, chunks: Sequence[Span]) -> None:
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].start, i))
        self._starts = [chunks[i].start for i in order]
        self._index = order

    def of(self, position: int) -> int:
        # Overlaps go to the later chunk; text before the first chunk goes to the first one.
        return self._index[max(0, bisect_right(self._starts, position) - 1)]


def _tally(
    frags: Sequence[ScoredFragment],
    reference: Reference,
    sentences: Sequence[Span],
    chunks: Sequence[Span],
    iou_threshold: float,
) -> list[ChunkTally]:
    if not chunks:
        raise ValueError("a run has at least one chunk")
    if any(f.chunk_index >= len(chunks) for f in frags):
        raise ValueError("a fragment refers to a chunk that does not exist")
    tallies = [ChunkTally() for _ in chunks]

    def add(index: int, tally: ChunkTally) -> None:
        tallies[index] = tallies[index] + tally

    for f in frags:
        add(
            f.chunk_index,
            ChunkTally(
                fragments=1,
                grounded=int(f.grounded),
                miu=int(f.is_miu),
                relevance_sum=f.relevance,
            ),
        )
    owner = _ChunkOwner(chunks)
    grounded = [(f.chunk_index, f.span) for f in frags if f.span is not None]
    if reference.exists:
        _tally_agreement(frags, grounded, reference, iou_threshold, owner, add)
    run_cover = _Cover(span for _, span in grounded)
    ref_cover = _Cover(reference.spans)
    for sentence in sentences:
        if sentence.length:
            touched_by_run = run_cover.touches(sentence)
            touched_by_ref = ref_cover.touches(sentence)
            add(
                owner.of(sentence.start),
                ChunkTally(
                    sentences=1, run_touched=int(touched_by_run), ref_touched=int(touched_by_ref)
                ),
            )
    return tallies


def _tally_agreement(
    frags: Sequence[ScoredFragment],
    grounded: Sequence[tuple[int, Span]],
    reference: Reference,
    iou_threshold: float,
    owner: _ChunkOwner,
    add: Callable[[int, ChunkTally], None],
) -> None:
    for f in frags:
        if f.span is None:  # ungrounded output agrees with nothing
            add(f.chunk_index, ChunkTally(fp=1))
    a = _assign([s for _, s in grounded], reference.spans, reference.rejected, iou_threshold)
    for (chunk, _), hit, on_rejected in zip(grounded, a.matched, a.on_rejected, strict=True):
        add(chunk, ChunkTally(tp=int(hit), fp=int(not hit), rejected_hits=int(on_rejected)))
    for span, found in zip(reference.spans, a.found, strict=True):
        if not found:
            add(owner.of(span.start), ChunkTally(fn=1))


def _components(t: ChunkTally, has_reference: bool) -> QualityComponents:
    run_cov = _share(t.run_touched, t.sentences)
    if has_reference:
        f1: float | None = MatchResult(t.tp, t.fp, t.fn).f1
        cov = coverage_ratio(run_cov, _share(t.ref_touched, t.sentences))
    else:
        f1, cov = None, run_cov
    return QualityComponents(
        f1=f1,
        grounded_rate=_share(t.grounded, t.fragments),
        miu_rate=_share(t.miu, t.fragments),
        coverage_ratio=cov,
        relevance=_share(t.relevance_sum, t.fragments) / 10,
    )


def evaluate_run(
    frags: Sequence[ScoredFragment],
    reference: Reference,
    sentences: Sequence[Span],
    weights: QualityWeights = DEFAULT_WEIGHTS,
    *,
    chunks: Sequence[Span],
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    resamples: int = 1000,
    confidence: float = 0.90,
    seed: int = 0,
) -> RunQuality:
    """Score one run against its reference, with a bootstrap interval over its chunks.

    `chunks` are the run's chunk spans, indexed by `ScoredFragment.chunk_index`; missed reference
    spans and sentences belong to the last chunk starting at or before them.
    """
    tallies = _tally(frags, reference, sentences, chunks, iou_threshold)
    total = _total(tallies)
    components = _components(total, reference.exists)
    score = quality_score(components, weights)

    # Resamples add plain tuples column by column: summing dataclasses field by field made
    # the bootstrap of a long source (hundreds of chunks) take seconds per run.
    rows = [t.as_tuple() for t in tallies]

    def resampled_score(sample: Sequence[tuple[int, ...]]) -> float:
        summed = ChunkTally(*map(sum, zip(*sample, strict=True)))
        return quality_score(_components(summed, reference.exists), weights)

    low, high = bootstrap_interval(
        rows, resampled_score, n=resamples, confidence=confidence, seed=seed
    )
    score = round_score(score)
    return RunQuality(
        score=score,
        # A percentile interval of a ratio of sums can miss its own point estimate; a report
        # must never show a score outside its interval, so widen rather than surprise.
        low=min(round_score(low), score),
        high=max(round_score(high), score),
        provisional=components.provisional,
        components=components,
        match=(
            MatchResult(total.tp, total.fp, total.fn, total.rejected_hits)
            if reference.exists
            else None
        ),
        coverage=_share(total.run_touched, total.sentences),
        reference_coverage=(
            _share(total.ref_touched, total.sentences) if reference.exists else None
        ),
        mean_relevance=_share(total.relevance_sum, total.fragments),
        reference_kind=reference.kind,
        reference_model=reference.model,
        fragments=total.fragments,
        grounded_fragments=total.grounded,
        miu_fragments=total.miu,
        chunks=len(chunks),
        sentences=total.sentences,
        tallies=tuple(rows),
    )


def score_of_tallies(rows: Iterable[Sequence[int]], has_reference: bool,
                     weights: QualityWeights = DEFAULT_WEIGHTS) -> float:
    """The (unrounded) score of summed chunk tallies: what `evaluate_run` computes."""
    columns = list(zip(*rows, strict=True))
    summed = ChunkTally(*map(sum, columns)) if columns else ChunkTally()
    return quality_score(_components(summed, has_reference), weights)


# --- paired differences -------------------------------------------------------------------------

Verdict = Literal["better", "worse", "not_worse", "inconclusive"]

# "Not worse than the reference" is claimed when the paired 90% interval's lower bound is above
# minus this many points (of 10): a difference smaller than the scores' own rounding step
# times 20 is no difference a user would act on.
NON_INFERIORITY_MARGIN = 0.2
_Z90 = 1.6448536269514722  # two-sided 90%: the 95th percentile of the standard normal


@dataclass(frozen=True, slots=True)
class PairedDelta:
    """A run's quality minus the reference model's run, over the same chunks of one source
    (or pooled over sources): point, 90% interval, and what it supports.

    `delta` is the difference of the two rounded scores, so it reads the same as the scores
    shown beside it; `pct*` divide by the baseline's score (`baseline_score`). `verdict`:
    "better" or "worse" when the interval excludes 0; "not_worse" when its lower bound is above
    -`margin`; else "inconclusive", with `chunks_needed`: how many more chunks, at the observed
    variance, the lower bound would need to clear -margin (None when the point estimate itself
    is below it, so more of the same evidence would not help).
    """

    baseline_model: str
    baseline_run_id: int | None
    baseline_score: float
    delta: float
    low: float
    high: float
    chunks: int
    sources: int
    se: float
    margin: float = NON_INFERIORITY_MARGIN

    def _pct(self, value: float) -> float | None:
        if self.baseline_score <= 0:
            return None
        return round(value / self.baseline_score * 100, 1)

    @property
    def pct(self) -> float | None:
        return self._pct(self.delta)

    @property
    def pct_low(self) -> float | None:
        return self._pct(self.low)

    @property
    def pct_high(self) -> float | None:
        return self._pct(self.high)

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0

    @property
    def verdict(self) -> Verdict:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        if self.low >= -self.margin:
            return "not_worse"
        return "inconclusive"

    @property
    def chunks_needed(self) -> int | None:
        """More chunks needed for the lower bound to clear -margin at the observed variance:
        the interval's half-width shrinks as 1/sqrt(chunks), so n' = n (z se / (delta +
        margin))^2 chunks in all. 0 when the evidence already decides."""
        if self.verdict != "inconclusive":
            return 0
        gap = self.delta + self.margin
        if gap <= 0 or self.chunks <= 0:
            return None
        total = self.chunks * (_Z90 * self.se / gap) ** 2
        return max(1, math.ceil(total) - self.chunks)

    def describe(self) -> str:
        """'-3.2% (90% CI -5.1..-1.0)': the quality change as reports state it."""
        pct, low, high = self.pct, self.pct_low, self.pct_high
        if pct is None or low is None or high is None:
            return (f"{_signed(self.delta)} points (90% CI {_signed(self.low)}.."
                    f"{_signed(self.high)})")
        return f"{_signed_pct(pct)} (90% CI {_signed_pct(low)}..{_signed_pct(high)})"

    def claim(self) -> str:
        """What the interval supports, in words a reviewer can repeat."""
        vs = self.baseline_model
        n = f"{self.chunks} chunk{'s' if self.chunks != 1 else ''}"
        verdict = self.verdict
        if verdict == "better":
            return f"better than {vs}: {self.describe()} over {n}"
        if verdict == "worse":
            return f"worse than {vs}: {self.describe()} over {n}"
        if verdict == "not_worse":
            return (f"not worse than {vs} by more than {self.margin:.1f} points: "
                    f"{self.describe()} over {n}")
        needed = self.chunks_needed
        more = (f"about {needed} more chunks would be needed at the observed variance"
                if needed is not None else
                "its point estimate is below the margin already, so more chunks of the same "
                "kind would not show it")
        return (f"not enough evidence that it is not worse than {vs}: {self.describe()} over "
                f"{n}; {more}")

    def to_json(self) -> dict[str, object]:
        return {"baselineModel": self.baseline_model, "baselineRunId": self.baseline_run_id,
                "baselineScore": self.baseline_score, "delta": self.delta, "low": self.low,
                "high": self.high, "chunks": self.chunks, "sources": self.sources,
                "se": self.se, "margin": self.margin}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairedDelta:
        run = data.get("baselineRunId")
        return cls(
            baseline_model=str(data["baselineModel"]),
            baseline_run_id=None if run is None else int(run),
            baseline_score=float(data["baselineScore"]), delta=float(data["delta"]),
            low=float(data["low"]), high=float(data["high"]), chunks=int(data["chunks"]),
            sources=int(data.get("sources", 1)), se=float(data.get("se", 0.0)),
            margin=float(data.get("margin", NON_INFERIORITY_MARGIN)))


def _signed(value: float) -> str:
    text = f"{value:+.2f}"
    return text.replace("-", "\u2212")


def _signed_pct(value: float) -> str:
    text = f"{value:+.1f}%"
    return text.replace("-", "\u2212")


def paired_delta(
    rows: Sequence[Sequence[int]],
    baseline_rows: Sequence[Sequence[int]],
    has_reference: bool,
    weights: QualityWeights = DEFAULT_WEIGHTS,
    *,
    baseline_model: str,
    baseline_run_id: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.90,
    seed: int = 0,
) -> PairedDelta:
    """Paired bootstrap of (run score - baseline score) over the same chunks of one source.

    Each resample draws chunk indices with replacement and scores both runs on exactly those
    chunks, so what the chunks share (a hard passage, an easy one) cancels out and the interval
    measures the difference, not the two runs' separate noise. The point is the difference of
    the two rounded scores; the bounds are rounded like scores and widened to hold the point.
    """
    if len(rows) != len(baseline_rows):
        raise ValueError("a paired comparison needs the same chunks on both sides")
    if resamples < 1:
        raise ValueError("bootstrap needs at least one resample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is outside (0, 1)")
    k = len(rows)

    def difference(indices: Sequence[int]) -> float:
        a = score_of_tallies([rows[i] for i in indices], has_reference, weights)
        b = score_of_tallies([baseline_rows[i] for i in indices], has_reference, weights)
        return a - b

    score = round_score(score_of_tallies(rows, has_reference, weights))
    baseline = round_score(score_of_tallies(baseline_rows, has_reference, weights))
    point = round_score(score - baseline)
    if k < 2:
        return PairedDelta(baseline_model, baseline_run_id, baseline, point, point, point,
                           chunks=k, sources=1, se=0.0)
    rng = random.Random(seed)
    deltas = sorted(difference(rng.choices(range(k), k=k)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    low, high = _percentile(deltas, tail), _percentile(deltas, 1 - tail)
    mean = sum(deltas) / len(deltas)
    se = (math.sqrt(sum((d - mean) ** 2 for d in deltas) / (len(deltas) - 1))
          if len(deltas) > 1 else 0.0)
    return PairedDelta(baseline_model, baseline_run_id, baseline, point,
                       min(round_score(low), point), max(round_score(high), point),
                       chunks=k, sources=1, se=se)


def pooled_delta(deltas: Sequence[PairedDelta]) -> PairedDelta | None:
    """Paired differences of one model on several sources, pooled: the mean of the per-source
    differences (pooled quality is the mean of per-source scores), with the standard error of
    a mean of independent estimates, sqrt(sum se_i^2) / n, and a normal 90% interval; the
    baseline score is the mean of the baselines'."""
    if not deltas:
        return None
    if len(deltas) == 1:
        return deltas[0]
    models = {d.baseline_model for d in deltas}
    if len(models) != 1:
        raise ValueError("pooled differences must share their baseline model")
    n = len(deltas)
    point = round_score(sum(d.delta for d in deltas) / n)
    se = math.sqrt(sum(d.se ** 2 for d in deltas)) / n
    return PairedDelta(
        baseline_model=models.pop(), baseline_run_id=None,
        baseline_score=round_score(sum(d.baseline_score for d in deltas) / n), delta=point,
        low=min(round_score(point - _Z90 * se), point),
        high=max(round_score(point + _Z90 * se), point),
        chunks=sum(d.chunks for d in deltas), sources=sum(d.sources for d in deltas), se=se)
