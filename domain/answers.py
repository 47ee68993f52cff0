"""A model's raw answers to a chunk, and what a run's chunk failures make of the run (pure).

Every answer a model gives is kept (compressed, in `run_answers`), whether it could be read or
not: a run can then be read again after a parser or grounder upgrade without paying the
provider again (`reprocessRun`). One unreadable chunk never fails its run; only a run where
most chunks fail, or a deterministic provider error, fails as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.model import RunStatus

EXTRACT = "extract"
REPAIR = "repair"

# Split halves are numbered 1 and 2 (0 is the whole chunk); the second half's fragments take
# ordinals from SPLIT_ORDINAL_BASE so the two halves never collide in one chunk.
WHOLE = 0
SPLIT_ORDINAL_BASE = 1000

DEFAULT_FAILED_CHUNK_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One provider call's answer, as it came back and as it was read."""

    part: int
    call_kind: str
    char_start: int
    char_end: int
    finish_reason: str | None
    content: str
    readable: bool
    strict: bool
    problem: str | None = None

    @property
    def ordinal_base(self) -> int:
        return SPLIT_ORDINAL_BASE if self.part == 2 else 0


@dataclass(frozen=True, slots=True)
class StoredAnswers:
    """The stored answers of one chunk of a run, oldest first."""

    chunk_index: int
    char_start: int
    char_end: int
    answers: tuple[AnswerRecord, ...]

    def parts(self) -> list[tuple[int, list[AnswerRecord]]]:
        """The parts to read again, in order: the halves when the chunk was split (its whole
        answer was cut at the output limit), else the whole chunk."""
        by_part: dict[int, list[AnswerRecord]] = {}
        for answer in self.answers:
            by_part.setdefault(answer.part, []).append(answer)
        if any(part != WHOLE for part in by_part):
            return sorted((part, answers) for part, answers in by_part.items() if part != WHOLE)
        return [(WHOLE, by_part.get(WHOLE, []))]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus
    message: str | None


def run_outcome(chunk_count: int, failed: int, first_error: str | None, *,
                failed_share: float = DEFAULT_FAILED_CHUNK_SHARE) -> RunOutcome:
    """The status of a run whose chunks all ran: completed, completed with errors (some chunks
    failed), or failed (more than `failed_share` of its chunks failed)."""
    if failed <= 0:
        return RunOutcome(RunStatus.COMPLETED, None)
    total = max(chunk_count, failed)
    summary = f"{failed} of {total} chunk{'s' if total != 1 else ''} failed"
    if first_error:
        summary += f"; first: {first_error}"
    if too_many_failed(total, failed, failed_share=failed_share):
        return RunOutcome(RunStatus.FAILED, summary)
    return RunOutcome(RunStatus.COMPLETED_WITH_ERRORS, summary)


def too_many_failed(chunk_count: int, failed: int, *,
                    failed_share: float = DEFAULT_FAILED_CHUNK_SHARE) -> bool:
    """More than `failed_share` of the chunks failed: the run fails as a whole (and can stop
    calling the provider as soon as this holds)."""
    return chunk_count > 0 and failed > failed_share * chunk_count


def format_adherence(answers: Iterable[AnswerRecord]) -> float | None:
    """Share of answers read strictly as asked; None when there was no answer."""
    read = strict = 0
    for answer in answers:
        read += 1
        strict += answer.strict
    return round(strict / read, 4) if read else None

