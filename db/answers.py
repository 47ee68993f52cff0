"""Raw model answers: stored compressed with each chunk, read back to reprocess a run."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from domain.answers import AnswerRecord, StoredAnswers

# zlib level 6: answers are JSON text, which shrinks to a fifth or less; the cost is far
# below a provider call's latency.
_LEVEL = 6
# Decompressing is bounded: an answer is at most a few hundred kilobytes of text.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


def compress_answer(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8", "surrogatepass"), _LEVEL)


def decompress_answer(body: bytes) -> str:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(body, MAX_ANSWER_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("a stored answer inflates beyond its bound")
    return raw.decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class FailedChunkView:
    chunk_index: int
    char_start: int
    char_end: int
    error: str | None
    answers: list[AnswerRecord]


async def failed_chunks_of_run(session: Any, run_id: int) -> list[FailedChunkView]:
    """The failed chunks of a run with their current answers, in chunk order."""
    chunks = (await session.execute(sa.text(
        "SELECT chunk_index, char_start, char_end, error FROM run_chunks"
        " WHERE run_id = :r AND status = 'failed' ORDER BY chunk_index"), {"r": run_id})).all()
    if not chunks:
        return []
    rows = (await session.execute(sa.text(
        "SELECT chunk_index, part, call_kind, char_start, char_end, finish_reason, readable,"
        " strict, problem, body FROM run_answers WHERE run_id = :r AND NOT superseded"
        " AND chunk_index = ANY(:c) ORDER BY chunk_index, part, id"),
        {"r": run_id, "c": [c.chunk_index for c in chunks]})).all()
    answers: dict[int, list[AnswerRecord]] = {}
    for row in rows:
        answers.setdefault(row.chunk_index, []).append(_record(row))
    return [FailedChunkView(c.chunk_index, c.char_start, c.char_end, c.error,
                            answers.get(c.chunk_index, [])) for c in chunks]


def _record(row: Any) -> AnswerRecord:
    return AnswerRecord(part=row.part, call_kind=row.call_kind, char_start=row.char_start,
                        char_end=row.char_end, finish_reason=row.finish_reason,
                        content=decompress_answer(bytes(row.body)), readable=row.readable,
                        strict=row.strict, problem=row.problem)


class AnswerRepository:
    """Reads and upkeep of `run_answers`, in the caller's transaction."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def of_run(self, run_id: int) -> list[StoredAnswers]:
        """The current (not superseded) answers of each chunk of a run, in chunk order."""
        rows = (await self.session.execute(sa.text(
            "SELECT a.chunk_index, c.char_start AS chunk_start, c.char_end AS chunk_end,"
            " a.part, a.call_kind, a.char_start, a.char_end, a.finish_reason, a.readable,"
            " a.strict, a.problem, a.body"
            " FROM run_answers a JOIN run_chunks c"
            " ON c.run_id = a.run_id AND c.chunk_index = a.chunk_index"
            " WHERE a.run_id = :r AND NOT a.superseded"
            " ORDER BY a.chunk_index, a.part, a.id"), {"r": run_id})).all()
        chunks: dict[int, tuple[int, int, list[AnswerRecord]]] = {}
        for row in rows:
            entry = chunks.setdefault(row.chunk_index, (row.chunk_start, row.chunk_end, []))
            entry[2].append(_record(row))
        return [StoredAnswers(index, start, end, tuple(answers))
                for index, (start, end, answers) in sorted(chunks.items())]

    async def count_of_run(self, run_id: int) -> int:
        """The run's current (not superseded) stored answers."""
        return int((await self.session.execute(sa.text(
            "SELECT count(*) FROM run_answers WHERE run_id = :r AND NOT superseded"),
            {"r": run_id})).scalar_one())

    async def supersede_failed(self, run_id: int) -> list[int]:
        """Forget the failed chunks of a run (their answers are kept, superseded): the next
        job of the run calls them again. Returns their indexes."""
        failed = list((await self.session.execute(sa.text(
            "DELETE FROM run_chunks WHERE run_id = :r AND status = 'failed'"
            " RETURNING chunk_index"), {"r": run_id})).scalars())
        if failed:
            await self.session.execute(sa.text(
                "UPDATE run_answers SET superseded = true WHERE run_id = :r"
                " AND chunk_index = ANY(:c) AND NOT superseded"), {"r": run_id, "c": failed})
            await self.session.execute(sa.text(
                "DELETE FROM fragments WHERE run_id = :r AND chunk_index = ANY(:c)"),
                {"r": run_id, "c": failed})
            await self.session.execute(sa.text(
                "UPDATE source_processing SET chunks_failed = 0 WHERE id = :r"), {"r": run_id})
        return sorted(failed)

    async def sweep(self, retention_days: int, limit: int = 5000) -> int:
        """Delete answers older than the retention (none when it is 0); returns the count."""
        if retention_days <= 0:
            return 0
        result = await self.session.execute(sa.text(
            "DELETE FROM run_answers WHERE id IN (SELECT id FROM run_answers"
            " WHERE created_at < now() - make_interval(days => :d) ORDER BY id LIMIT :n)"),
            {"d": retention_days, "n": limit})
        return int(result.rowcount or 0)
