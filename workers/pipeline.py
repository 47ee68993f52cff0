"""The extraction pipeline for one claimed job: chunk, call, parse, ground, persist, settle."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from db.budget import BudgetExceeded, BudgetLedger, Reservation, levers_of
from db.catalog import spec_of
from db.engine import sqlstate_of
from db.jobs import ClaimedJob, JobQueue
from db.processing import (
    CHUNK_RUN_INACTIVE,
    CHUNK_STORED_BEFORE,
    CHUNK_TAG_RACE,
    ChunkUsage,
    ProcessingRepository,
    RunContext,
    RunNotActive,
    store_chunk,
)
from db.provider_batches import ProviderBatchRepository
from db.tables import ProviderBatchRow
from domain.answers import (
    EXTRACT,
    REPAIR,
    SPLIT_ORDINAL_BASE,
    WHOLE,
    AnswerRecord,
    StoredAnswers,
    too_many_failed,
)
from domain.batching import WINDOW_SECONDS, BatchLine, BatchState, batch_provider
from domain.chunking import Chunk, chunk_text, split_chunk
from domain.extraction import PreparedFragment, prepare_fragments
from domain.llm import (
    DeterministicModelError,
    ModelClient,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    TransientModelError,
)
from domain.locations import SegmentIndex
from domain.model import FINISHED_RUN, JobKind
from domain.parsing import FRAGMENTS_JSON_SCHEMA, AnswerFormatError, ParsedAnswer, parse_answer
from domain.prompt import build_messages, build_repair_messages
from domain.services import quality
from domain.subjects import Subject
from workers.limits import LEASE_MARGIN_S, ModelLimiter, Permit, limiter_for

log = logging.getLogger("mmos.pipeline")

RETRY_AFTER_CAP_S = 60.0
MAX_BATCH_SUBMISSIONS = 3  # provider batches a chunk may come back from without an answer
# Polls this frequent are waited out inside the job; longer ones give the job back.
IN_JOB_POLL_MAX_S = 5.0
_LOOK_AGAIN = "look again"
UNIQUE_VIOLATION = "23505"
PROMPT_OVERHEAD_TOKENS = 800


def plan_chunks(content: str, spec: ModelSpec, max_tokens: int, *, chunk_max_tokens: int,
                chunk_overlap_tokens: int, layout: SegmentIndex | None = None) -> list[Chunk]:
    """The chunks a run of `spec` makes of `content` (the forecast plans the same ones): no
    boundary inside a transcript cue, turns preferred as boundaries."""
    room = spec.context_window - max_tokens - PROMPT_OVERHEAD_TOKENS
    budget = max(100, min(chunk_max_tokens, room))
    # Chunks are planned with the cheap estimate (about 4 characters a token): thousands of
    # tokenizer calls per long source would cost more than they buy, since chunk budgets
    # sit far below context windows. Reservations still count each prompt exactly.
    return chunk_text(content, max_tokens=budget,
                      overlap_tokens=min(chunk_overlap_tokens, budget // 4),
                      protected=layout.cue_spans() if layout else (),
                      strong=layout.turn_starts() if layout else ())


def chunk_messages(chunk: Chunk, *, language: str, source_type: str,
                   layout: SegmentIndex | None, subject: Subject | None
                   ) -> list[dict[str, str]]:
    """The messages of one chunk's call: the subject named, and who is speaking where the
    chunk opens mid-turn (the forecast counts the same messages)."""
    opening = layout.opening_speaker(chunk.start) if layout else None
    return build_messages(chunk.text, language=language, source_type=source_type,
                          subject=subject, opening_speaker=opening)


class BudgetPause(Exception):
    """The next call does not fit in the budget: the run waits, it does not fail."""

    def __init__(self, message: str, needed: Decimal) -> None:
        super().__init__(message)
        self.needed = needed


class RunFailed(Exception):
    """The run cannot succeed; `retryable` when another attempt later may."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class RunStopped(Exception):
    """The run hit the per-fragment cost guard."""


class RunCancelled(Exception):
    """The batch was cancelled or our lease was lost: stop quietly."""


@dataclass
class _Flags:
    cancelled: bool = False
    lease_lost: bool = False


@dataclass
class _Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    calls: int = 0
    # Prompt-cache tokens and the cost levers: cost = list − cache saved − batch saved.
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    list_cost_usd: Decimal = Decimal(0)
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    @classmethod
    def of_response(cls, response: ModelResponse) -> _Usage:
        """One answered call's usage and cost split."""
        return cls(response.input_tokens, response.output_tokens, response.cost_usd,
                   response.latency_ms, 1, response.cached_input_tokens,
                   response.cache_write_tokens, response.list_cost, response.cache_saved_usd,
                   response.batch_saved_usd)

    def add(self, other: _Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.latency_ms += other.latency_ms
        self.calls += other.calls
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.list_cost_usd += other.list_cost_usd
        self.cache_saved_usd += other.cache_saved_usd
        self.batch_saved_usd += other.batch_saved_usd

    def frozen(self) -> ChunkUsage:
        return ChunkUsage(self.input_tokens, self.output_tokens, self.cost_usd, self.latency_ms,
                          self.calls, cached_input_tokens=self.cached_input_tokens,
                          cache_write_tokens=self.cache_write_tokens,
                          list_cost_usd=self.list_cost_usd,
                          cache_saved_usd=self.cache_saved_usd,
                          batch_saved_usd=self.batch_saved_usd)


@dataclass
class _ChunkResult:
    """What one chunk's calls gave: its fragments, usage and every answer; `error` when its
    answers stayed unreadable (the chunk is stored as failed, with what could be read)."""

    fragments: list[PreparedFragment] = field(default_factory=list)
    usage: _Usage = field(default_factory=_Usage)
    answers: list[AnswerRecord] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Failures:
    """Failed chunks of the run so far (this job's and earlier jobs')."""

    chunk_count: int
    failed: int = 0


@dataclass
class PipelineHooks:
    """Callbacks after commits: progress events published, a run finished."""

    events_committed: Callable[[list[tuple[int, int]]], Any] | None = None
    run_finished: Callable[[int, str], Any] | None = None
    wake: Callable[[list[int]], Any] | None = None


@dataclass
class Pipeline:
    """Processes claimed jobs with one model client against one database runtime."""

    runtime: Any  # the worker's container: settings, uow (db.uow.SqlUnitOfWorkFactory), ports
    client: ModelClient
    owner: str
    hooks: PipelineHooks = field(default_factory=PipelineHooks)
    sleep: Callable[[float], Any] = asyncio.sleep
    batch_client: Any = None  # workers.batch_api.BatchClient, for BATCH-mode runs
    limiter: ModelLimiter | None = None  # workers.limits: per-model limits of every worker

    @property
    def settings(self) -> Any:
        return self.runtime.settings

    @property
    def uow(self) -> Any:
        return self.runtime.uow

    async def _commit(self, work: Callable[[Any], Any]) -> Any:
        """Run `work(session)` in a unit of work (again on a deadlock); its events are
        published by the unit of work after commit, then handed to the hook."""
        done: list[Any] = []

        async def attempt(uow: Any) -> Any:
            done[:] = [uow]
            return await work(uow.session)

        result = await self.uow.retrying(attempt)
        if done and done[0].published and self.hooks.events_committed is not None:
            await _maybe_await(self.hooks.events_committed(done[0].published))
        return result

    async def _published(self, events: list[tuple[int, int]]) -> None:
        """Hand events committed outside a unit of work (autocommit) to the bus and hook."""
        if not events:
            return
        await self.uow.publish(events)
        if self.hooks.events_committed is not None:
            await _maybe_await(self.hooks.events_committed(events))

    async def _autocommit(self, work: Callable[[Any], Any]) -> Any:
        """Run single-statement work on an autocommit connection (retried on deadlocks)."""
        return await self.uow.autocommit(work)

    def _ledger(self, session: Any) -> BudgetLedger:
        return self.uow.ledger(session)

    # -- the job --------------------------------------------------------------------------

    async def run_job(self, job: ClaimedJob) -> str:
        """Run one claimed extraction job to an outcome; returns the run status."""
        if job.kind == JobKind.CANCEL_PROVIDER_BATCH.value:
            return await self._cancel_provider_batch(job)
        async with self.uow(read_only=True) as uow:
            ctx = await uow.processing.run_context(job.run_id or 0)
        if ctx is None:
            await self._commit(lambda s: JobQueue(s).finish(job.id, self.owner, "failed",
                                                            "the run no longer exists"))
            return "missing"
        if ctx.batch.status == "cancelled" or ctx.run.status in (*FINISHED_RUN, "failed",
                                                                 "skipped"):
            await self._commit(lambda s: JobQueue(s).finish(job.id, self.owner, "cancelled"))
            return ctx.run.status
        flags = _Flags()
        renewer = asyncio.create_task(self._renew(job, flags))
        try:
            return await self._process(job, ctx, flags)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _process(self, job: ClaimedJob, ctx: RunContext, flags: _Flags) -> str:
        try:
            if ctx.run.reprocessed_from_id is not None:
                await self._reread(ctx, flags)
                return await self._finish(job, ctx, "completed", None)
            await self._preflight(ctx)
            if ctx.batch.mode == "batch":
                while True:
                    try:
                        waiting = await self._batch_process(job, ctx, flags)
                    except TransientModelError as exc:
                        # The provider's batch service is down or busy: look again later;
                        # what was written (the submission, its reservations) is resumed from.
                        log.warning("run %s: batch API unavailable, looking again later: %s",
                                    ctx.run.id, exc.message)
                        waiting = await self._batch_wait(job, ctx)
                    except DeterministicModelError as exc:
                        raise RunFailed(exc.message) from None
                    if waiting != _LOOK_AGAIN:
                        break
                    if flags.cancelled or flags.lease_lost:
                        raise RunCancelled()
                if waiting is not None:
                    return waiting
                return await self._finish(job, ctx, "completed", None)
            chunks = self._chunks(ctx)
            await self._commit(lambda s: ProcessingRepository(s).start_run(
                ctx.run.id or 0, ctx.batch.id or 0, len(chunks)))
            async with self.uow(read_only=True) as uow:
                states = await uow.processing.chunk_states(ctx.run.id or 0)
            todo = [chunk for chunk in chunks if chunk.index not in states]
            failures = _Failures(len(chunks), sum(1 for s in states.values() if s == "failed"))
            await self._chunks_concurrently(ctx, todo, flags, failures)
        except RunCancelled:
            if flags.lease_lost:
                log.warning("lease lost on job %s; another worker takes over", job.id)
                return "lease_lost"
            return await self._finish(job, ctx, "skipped", "cancelled", job_status="cancelled")
        except BudgetPause as pause:
            message, needed = str(pause), pause.needed
            await self._commit(lambda s: self._pause(s, job, ctx, message, needed))
            return "waiting_budget"
        except RunStopped as stop:
            return await self._finish(job, ctx, "stopped_cost_limit", str(stop))
        except RunFailed as failure:
            reason = failure.message
            if failure.retryable and job.attempts < job.max_attempts:
                delay = min(300.0, 5.0 * 2 ** job.attempts)
                await self._commit(lambda s: self._retry_later(s, job, ctx, reason, delay))
                return "pending"
            return await self._finish(job, ctx, "failed", reason, job_status="failed")
        return await self._finish(job, ctx, "completed", None)

    async def _finish(self, job: ClaimedJob, ctx: RunContext, status: str,
                      error: str | None, job_status: str = "done") -> str:
        share = self.settings.run_failed_chunk_share

        async def work(session: Any) -> str:
            if not await JobQueue(session).finish(job.id, self.owner, job_status, error):
                return "lease_lost"
            return await ProcessingRepository(session).finish_run(ctx, status, error,
                                                                  failed_share=share)

        outcome: str = await self._commit(work)
        if outcome != "lease_lost":
            await self._run_finished(ctx.run.id or 0, outcome)
            if self.hooks.run_finished is not None:
                await _maybe_await(self.hooks.run_finished(ctx.run.id or 0, outcome))
        return outcome

    async def _run_finished(self, run_id: int, status: str) -> None:
        """The run-end path: measure the source, let its strategy plan take the next step."""
        try:
            await quality.run_finished(self.runtime.ports, run_id, status)
        except Exception:  # the run's end is committed; catch-up measures it at next start
            log.warning("quality could not process the end of run %s", run_id, exc_info=True)

    async def _pause(self, session: Any, job: ClaimedJob, ctx: RunContext, message: str,
                     needed: Decimal) -> None:
        if await JobQueue(session).release(job.id, self.owner, status="waiting_budget",
                                           error=message, payload={"needed_usd": str(needed)}):
            await ProcessingRepository(session).set_run_waiting_budget(ctx, message)

    async def _retry_later(self, session: Any, job: ClaimedJob, ctx: RunContext, message: str,
                           delay: float) -> None:
        if await JobQueue(session).release(job.id, self.owner, delay_seconds=delay,
                                           error=message):
            await ProcessingRepository(session).set_run_pending(
                ctx.run.id or 0, f"attempt {job.attempts} failed, retrying: {message}")

    async def _renew(self, job: ClaimedJob, flags: _Flags) -> None:
        lease = self.settings.job_lease_seconds
        while True:
            await asyncio.sleep(max(1.0, lease / 3))
            try:
                status = await self._commit(lambda s: JobQueue(s).renew(job.id, self.owner,
                                                                        lease))
            except Exception:  # the database blinked: try again before the lease ends
                log.warning("lease renewal of job %s failed", job.id, exc_info=True)
                continue
            if status is None:
                async with self.uow(read_only=True) as uow:
                    current = await uow.jobs.status_of(job.id)
                flags.cancelled = current == "cancelled"
                flags.lease_lost = not flags.cancelled
                return

    # -- checks before spending -----------------------------------------------------------

    async def _preflight(self, ctx: RunContext) -> None:
        if not ctx.model.enabled:
            raise RunFailed(f"model {ctx.model.name!r} is disabled in the catalog")
        if spec_of(ctx.model).is_priced:
            return
        async with self.uow(read_only=True) as uow:
            daily = await uow.budget.daily_limit()
        if daily is not None or ctx.batch.budget_usd is not None:
            raise RunFailed(f"model {ctx.model.name!r} has no known price and a budget is in "
                            "force; set its prices with updateModel first")

    def _chunks(self, ctx: RunContext) -> list[Chunk]:
        return plan_chunks(ctx.source.content, spec_of(ctx.model), self._max_tokens(ctx),
                           chunk_max_tokens=self.settings.chunk_max_tokens,
                           chunk_overlap_tokens=self.settings.chunk_overlap_tokens,
                           layout=ctx.layout)

    def _max_tokens(self, ctx: RunContext) -> int:
        return min(ctx.model.max_output_tokens, self.settings.max_output_tokens)

    # -- chunks -----------------------------------------------------------------------------

    async def _chunks_concurrently(self, ctx: RunContext, chunks: list[Chunk],
                                   flags: _Flags, failures: _Failures) -> None:
        gate = asyncio.Semaphore(self.settings.llm_concurrency)
        async with self.uow(read_only=True) as uow:
            # Read once per job: a limit changed mid-run applies from the next job.
            limit = await uow.budget.fragment_cost_limit()

        stop = asyncio.Event()

        async def one(chunk: Chunk) -> None:
            async with gate:
                if stop.is_set():
                    return
                try:
                    await self._chunk(ctx, chunk, flags, limit, failures)
                except Exception:
                    stop.set()
                    raise

        # Not a TaskGroup: when one chunk fails (budget, guard, bad request) the chunks already
        # calling the provider finish and are saved. Cancelling them would drop answers the
        # provider has already billed, and under a tight budget a run would never progress.
        results = await asyncio.gather(*(one(chunk) for chunk in chunks),
                                       return_exceptions=True)
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, Exception):
                errors.append(result)
            elif isinstance(result, BaseException):  # cancelled from outside: no outcome
                raise result
        if errors:
            raise _most_significant(ExceptionGroup("chunks failed", errors)) from None

    async def _chunk(self, ctx: RunContext, chunk: Chunk, flags: _Flags,
                     limit: Decimal | None, failures: _Failures) -> None:
        if flags.cancelled or flags.lease_lost:
            raise RunCancelled()
        # Settling a call's cost (one ledger statement) runs while the answer is parsed and
        # grounded; it is done before the chunk is stored.
        settling: list[asyncio.Future[None]] = []
        try:
            result = await self._extract(ctx, chunk, flags, part=WHOLE, allow_split=True,
                                         settling=settling)
        finally:
            await _settled(settling)
        if flags.cancelled or flags.lease_lost:
            raise RunCancelled()
        await self._store(ctx, chunk, result)
        if result.error is not None:
            failures.failed += 1
            log.warning("run %s: chunk %s failed: %s", ctx.run.id, chunk.index, result.error)
            if too_many_failed(failures.chunk_count, failures.failed,
                               failed_share=self.settings.run_failed_chunk_share):
                raise RunFailed(f"{ctx.model.name}: {failures.failed} of "
                                f"{failures.chunk_count} chunks failed, more than the run "
                                f"tolerates; last: {result.error}")
        await self._cost_guard(ctx, limit)

    async def _store(self, ctx: RunContext, chunk: Chunk, result: _ChunkResult) -> None:
        """Store a new chunk in one autocommit statement (one round trip, and the run row is
        held only while it runs); a chunk stored before, or a tag race, takes the replacing
        transaction instead."""
        try:
            seq = await self._autocommit(lambda connection: store_chunk(
                connection, ctx, chunk_index=chunk.index, char_start=chunk.start,
                char_end=chunk.end, fragments=result.fragments, usage=result.usage.frozen(),
                codes=None, replacing=False, answers=result.answers, error=result.error))
        except Exception as exc:
            state = sqlstate_of(exc)
            if state == CHUNK_RUN_INACTIVE:
                # Once cancelBatch has skipped the run, nothing of it lands after CANCELLED.
                raise RunCancelled() from None
            if state not in (CHUNK_STORED_BEFORE, CHUNK_TAG_RACE, UNIQUE_VIOLATION):
                raise
            await self._commit(lambda s: self._save_chunk(s, ctx, chunk, result))
            return
        await self._published([(ctx.batch.id or 0, seq)])

    @staticmethod
    async def _save_chunk(session: Any, ctx: RunContext, chunk: Chunk,
                          result: _ChunkResult) -> int:
        repository = ProcessingRepository(session)
        # save_chunk rolls back when the run is no longer processing: once cancelBatch has
        # skipped the run, no fragment and no event of it lands after CANCELLED.
        try:
            return await repository.save_chunk(
                ctx, chunk_index=chunk.index, char_start=chunk.start, char_end=chunk.end,
                fragments=result.fragments, usage=result.usage.frozen(),
                answers=result.answers, error=result.error)
        except RunNotActive:
            raise RunCancelled() from None

    async def _extract(self, ctx: RunContext, chunk: Chunk, flags: _Flags, *, part: int,
                       allow_split: bool, settling: list[asyncio.Future[None]],
                       ordinal: int = 0, first: ModelResponse | None = None) -> _ChunkResult:
        """The chunk's answer, read tolerantly; one repair call only when it cannot be read.
        An answer that stays unreadable fails the chunk, not the run. `first` is an answer
        already paid for (a provider batch's result): it is read instead of calling."""
        result = _ChunkResult()
        messages = self._messages(ctx, chunk)
        kind = EXTRACT
        while True:
            if first is not None:
                response, first = first, None
                result.usage.add(_Usage(response.input_tokens, response.output_tokens,
                                        response.cost_usd, response.latency_ms, 1))
            else:
                response = await self._call(ctx, messages, kind, result.usage, flags, settling)
            if response.finish_reason == "length":
                result.answers.append(_record(part, kind, chunk, response, None,
                                              "cut at the output limit"))
                return await self._split(ctx, chunk, flags, result, allow_split, ordinal,
                                         settling)
            try:
                parsed = parse_answer(response.content)
            except AnswerFormatError as problem:
                result.answers.append(_record(part, kind, chunk, response, None,
                                              problem.problem))
                if kind == REPAIR:
                    result.error = (f"{ctx.model.name}: the answer for chunk {chunk.index} "
                                    f"stayed unreadable after one repair call: "
                                    f"{problem.problem}")
                    return result
                messages = build_repair_messages(messages, response.content, problem.problem)
                kind = REPAIR
                continue
            result.answers.append(_record(part, kind, chunk, response, parsed, None))
            result.fragments = self._prepared(ctx, chunk, parsed, ordinal)
            return result

    @staticmethod
    def _messages(ctx: RunContext, chunk: Chunk) -> list[dict[str, str]]:
        return chunk_messages(chunk, language=ctx.source.language,
                              source_type=ctx.source.source_type, layout=ctx.layout,
                              subject=ctx.subject)

    def _request(self, ctx: RunContext, messages: list[dict[str, str]]) -> ModelRequest:
        return ModelRequest(model=spec_of(ctx.model), messages=messages,
                            max_tokens=self._max_tokens(ctx), json_schema=FRAGMENTS_JSON_SCHEMA,
                            timeout_s=self.settings.llm_timeout_seconds)

    # -- BATCH mode: the provider's batch API ----------------------------------------------

    async def _batch_process(self, job: ClaimedJob, ctx: RunContext,
                             flags: _Flags) -> str | None:
        """One step of a BATCH-mode run: submit the chunks not stored yet, or look at the
        submission in flight, or collect its results and submit again what did not come back.
        Returns the status to leave the run in while the provider works (the job comes back
        after `MMOS_BATCH_POLL_SECONDS`), or None when every chunk is stored."""
        if self.batch_client is None:
            raise RunFailed(f"{ctx.model.name}: this worker's model client has no batch API")
        run_id = ctx.run.id or 0
        chunks = {chunk.index: chunk for chunk in self._chunks(ctx)}
        async with self.uow(read_only=True) as uow:
            states = await uow.processing.chunk_states(run_id)
            submission = await ProviderBatchRepository(uow.session).open_of_run(run_id)
            history = await ProviderBatchRepository(uow.session).of_runs([run_id])
        if submission is None:
            todo = [chunks[i] for i in sorted(chunks) if i not in states]
            if not todo:
                return None
            tried = _submissions_per_chunk(history.get(run_id, []))
            exhausted = [c for c in todo if tried.get(c.index, 0) >= MAX_BATCH_SUBMISSIONS]
            for chunk in exhausted:  # failed in every submission: failed alone, as a chunk
                await self._store(ctx, chunk, _ChunkResult(error=(
                    f"{ctx.model.name}: chunk {chunk.index} came back without an answer from "
                    f"{MAX_BATCH_SUBMISSIONS} provider batches")))
            todo = [c for c in todo if c not in exhausted]
            if not todo:
                return None
            await self._commit(lambda s: ProcessingRepository(s).start_run(
                run_id, ctx.batch.id or 0, len(chunks)))
            submission = await self._batch_reserve(ctx, todo)
        if submission.status == "submitting":
            await self._batch_send(ctx, submission, chunks)
            return await self._batch_wait(job, ctx)
        state = await self.batch_client.state(spec_of(ctx.model),
                                              submission.provider_batch_id or "")
        if not state.ended:
            await self._commit(lambda s: ProviderBatchRepository(s).polled(
                submission.id or 0, state.status))
            return await self._batch_wait(job, ctx)
        await self._batch_collect(ctx, submission, state, chunks, flags)
        # What did not come back is submitted again, at once, in a new provider batch.
        return await self._batch_process(job, ctx, flags)

    async def _cancel_provider_batch(self, job: ClaimedJob) -> str:
        """Ask the provider to stop the batch of a cancelled submission (its reservations
        were released when it was cancelled); a transient failure is retried later."""
        row_id = int(job.payload.get("providerBatch") or 0)
        async with self.uow(read_only=True) as uow:
            row = await uow.session.get(ProviderBatchRow, row_id)
            ctx = await uow.processing.run_context(job.run_id or 0)
        outcome, error = "done", None
        if row is not None and ctx is not None and row.provider_batch_id \
                and self.batch_client is not None:
            try:
                state = await self.batch_client.cancel(spec_of(ctx.model),
                                                       row.provider_batch_id)
                await self._commit(lambda s: ProviderBatchRepository(s).polled(row_id, state))
            except TransientModelError as exc:
                message = exc.message
                if job.attempts < job.max_attempts:
                    await self._commit(lambda s: JobQueue(s).release(
                        job.id, self.owner, delay_seconds=30, error=message))
                    return "pending"
                outcome, error = "failed", message
            except DeterministicModelError as exc:
                outcome, error = "failed", exc.message
        await self._commit(lambda s: JobQueue(s).finish(job.id, self.owner, outcome, error))
        return outcome

    async def _batch_reserve(self, ctx: RunContext, chunks: list[Chunk]) -> Any:
        """Write the submission with the worst case of each chunk reserved, before anything is
        sent: a budget that cannot cover it pauses the run, nothing is submitted."""
        spec = spec_of(ctx.model)
        worst: dict[int, Decimal] = {}
        for chunk in chunks:
            request = self._request(ctx, self._messages(ctx, chunk))
            prompt = self.client.count_tokens(
                spec, "\n".join(m["content"] for m in request.messages))
            worst[chunk.index] = self.client.worst_case_cost(request, prompt,
                                                             batch=True) or Decimal(0)
        ttl = WINDOW_SECONDS + 3600
        provider = batch_provider(spec.litellm_model) or "unknown"

        async def work(session: Any) -> Any:
            ledger = self._ledger(session)
            held: dict[int, dict[str, str]] = {}
            for index, amount in worst.items():
                reservation = await ledger.reserve(
                    amount=amount, model_name=ctx.model.name, call_kind="batch",
                    batch_id=ctx.batch.id, run_id=ctx.run.id, job_id=None, ttl_seconds=ttl,
                    batch_has_budget=ctx.batch.budget_usd is not None)
                held[index] = {"id": str(reservation.ledger_id),
                               "amount": str(reservation.amount),
                               "day": reservation.day.isoformat()}
            return await ProviderBatchRepository(session).create(
                run_id=ctx.run.id or 0, key=uuid.uuid4().hex, provider=provider,
                chunks=sorted(worst), reservations=held)

        try:
            return await self._commit(work)
        except BudgetExceeded as exc:
            raise BudgetPause(str(exc), exc.needed) from None

    async def _batch_send(self, ctx: RunContext, submission: Any,
                          chunks: dict[int, Chunk]) -> None:
        """Hand the submission to the provider, unless it already has it (a worker died after
        sending and before recording): found by the idempotency key in its metadata."""
        spec = spec_of(ctx.model)
        found = await self.batch_client.find(spec, submission.idempotency_key)
        if found is None:
            lines = [self.batch_client.line(index, self._request(
                ctx, self._messages(ctx, chunks[index]))) for index in submission.chunks]
            found = await self.batch_client.submit(spec, lines, submission.idempotency_key)
        input_file, batch_id = found
        await self._commit(lambda s: ProviderBatchRepository(s).submitted(
            submission.id or 0, input_file_id=input_file, batch_id=batch_id))

    async def _batch_wait(self, job: ClaimedJob, ctx: RunContext) -> str:
        """Wait for the next look at the provider: a short wait in the job (holding its
        thread, its lease renewed), a long one by giving the job back with a delayed wake-up;
        neither costs an attempt."""
        delay = self.settings.batch_poll_seconds
        if delay <= IN_JOB_POLL_MAX_S:
            await self.sleep(delay)
            return _LOOK_AGAIN
        released = await self._commit(lambda s: JobQueue(s).release(
            job.id, self.owner, delay_seconds=delay, refund_attempt=True))
        if released and self.uow.dispatcher is not None:
            # A little after the job's available_at: a wake-up that came early would find
            # nothing to claim (the sweeper would then send another, later).
            await self.uow.dispatcher.send([job.id], delay_ms=round(delay * 1000) + 100)
        return "processing"

    async def _batch_collect(self, ctx: RunContext, submission: Any, state: BatchState,
                             chunks: dict[int, Chunk], flags: _Flags) -> None:
        """Store every result that came back, settled at the batch price (each reservation is
        settled at most once, each chunk stored once), release the reservations of the chunks
        that did not come back, and close the submission."""
        spec = spec_of(ctx.model)
        lines: dict[int, BatchLine] = {}
        for file_id in (state.error_file_id, state.output_file_id):  # answers win over errors
            if file_id:
                for line in await self.batch_client.lines(spec, file_id):
                    if line.chunk_index in submission.chunks:
                        lines[line.chunk_index] = line
        async with self.uow(read_only=True) as uow:
            states = await uow.processing.chunk_states(ctx.run.id or 0)
        missing: list[str] = []
        for index in submission.chunks:
            if flags.cancelled or flags.lease_lost:
                raise RunCancelled()
            held = submission.reservations.get(str(index))
            reservation = Reservation(int(held["id"]), Decimal(held["amount"]),
                                      date.fromisoformat(held["day"])) if held else None
            line = lines.get(index)
            if index in states:  # stored before a crash: its settlement happened first
                continue
            if line is None or not line.ok or line.body is None:
                missing.append(f"{index}: {line.error if line else 'no result'}")
                if reservation is not None:
                    await self._release_quietly(reservation, "batch: no result")
                continue
            chunk = chunks[index]
            request = self._request(ctx, self._messages(ctx, chunk))
            response = self.client.batch_response(request, line.body)
            if reservation is not None:
                call = _Usage(response.input_tokens, response.output_tokens, response.cost_usd,
                              0, 1)
                await self._settle(ctx, reservation, response, call, "batch")
            settling: list[asyncio.Future[None]] = []
            try:
                result = await self._extract(ctx, chunk, flags, part=WHOLE, allow_split=True,
                                             settling=settling, first=response)
            finally:
                await _settled(settling)
            await self._store(ctx, chunk, result)
        error = "; ".join(missing)[:2000] or None
        await self._commit(lambda s: ProviderBatchRepository(s).collected(
            submission.id or 0, provider_status=state.status,
            output_file_id=state.output_file_id, error_file_id=state.error_file_id,
            error=error))

    def _prepared(self, ctx: RunContext, chunk: Chunk, parsed: ParsedAnswer,
                  ordinal: int) -> list[PreparedFragment]:
        return prepare_fragments(ctx.source.content, chunk, parsed.fragments,
                                 language=ctx.source.language, start_ordinal=ordinal,
                                 segments=ctx.layout,
                                 answer_notes=parsed.notes)

    async def _split(self, ctx: RunContext, chunk: Chunk, flags: _Flags, result: _ChunkResult,
                     allow_split: bool, ordinal: int, settling: list[asyncio.Future[None]]
                     ) -> _ChunkResult:
        # Truncation is not a parse error: halve the chunk and try each half once.
        if not allow_split or len(chunk.text) < 200:
            result.error = (f"{ctx.model.name}: the answer for chunk {chunk.index} was cut at "
                            f"the output limit even after splitting the chunk")
            return result
        head, tail = split_chunk(chunk)
        for part, half, base in ((1, head, ordinal), (2, tail, ordinal + SPLIT_ORDINAL_BASE)):
            piece = await self._extract(ctx, half, flags, part=part, allow_split=False,
                                        settling=settling, ordinal=base)
            result.usage.add(piece.usage)
            result.answers.extend(piece.answers)
            result.fragments.extend(piece.fragments)
            if piece.error is not None and result.error is None:
                result.error = piece.error
        return result

    # -- reading a run again from its stored answers (reprocessRun) -------------------------

    async def _reread(self, ctx: RunContext, flags: _Flags) -> None:
        """Read, ground and lint the stored answers of the run this one reprocesses: no
        provider call, no spend; each chunk is stored as a normal chunk would be."""
        origin = ctx.run.reprocessed_from_id or 0
        async with self.uow(read_only=True) as uow:
            stored = await uow.answers.of_run(origin)
        if not stored:
            raise RunFailed(f"run {origin} has no stored answers left to read again")
        await self._commit(lambda s: ProcessingRepository(s).start_run(
            ctx.run.id or 0, ctx.batch.id or 0, len(stored)))
        async with self.uow(read_only=True) as uow:
            states = await uow.processing.chunk_states(ctx.run.id or 0)
        for answers in stored:
            if flags.cancelled or flags.lease_lost:
                raise RunCancelled()
            if answers.chunk_index in states:
                continue
            chunk = Chunk(answers.chunk_index, answers.char_start, answers.char_end,
                          ctx.source.content[answers.char_start:answers.char_end])
            await self._store(ctx, chunk, self._reread_chunk(ctx, answers))

    def _reread_chunk(self, ctx: RunContext, stored: StoredAnswers) -> _ChunkResult:
        result = _ChunkResult()
        for _part, answers in stored.parts():
            read: tuple[AnswerRecord, ParsedAnswer] | None = None
            last_problem = "no answer was stored"
            for answer in answers:
                span = Chunk(stored.chunk_index, answer.char_start, answer.char_end,
                             ctx.source.content[answer.char_start:answer.char_end])
                if answer.finish_reason == "length":
                    result.answers.append(replace(answer, readable=False, strict=False,
                                                  problem="cut at the output limit"))
                    last_problem = "cut at the output limit"
                    continue
                try:
                    parsed = parse_answer(answer.content)
                except AnswerFormatError as problem:
                    result.answers.append(replace(answer, readable=False, strict=False,
                                                  problem=problem.problem))
                    last_problem = problem.problem
                    continue
                result.answers.append(replace(answer, readable=True, strict=parsed.strict,
                                              problem=None))
                if read is None:
                    read = (answer, parsed)
                    result.fragments.extend(self._prepared(ctx, span, parsed,
                                                           answer.ordinal_base))
            if read is None and result.error is None:
                result.error = (f"{ctx.model.name}: the stored answers for chunk "
                                f"{stored.chunk_index} are still unreadable: {last_problem}")
        return result

    async def _call(self, ctx: RunContext, messages: list[dict[str, str]], kind: str,
                    usage: _Usage, flags: _Flags,
                    settling: list[asyncio.Future[None]]) -> ModelResponse:
        """One logical call: reserve, call, settle; transient errors retried with backoff."""
        spec = spec_of(ctx.model)
        request = self._request(ctx, messages)
        prompt_tokens = self.client.count_tokens(spec, "\n".join(m["content"] for m in messages))
        worst = self.client.worst_case_cost(request, prompt_tokens) or Decimal(0)
        retries = self.settings.llm_max_transient_retries
        for attempt in range(retries + 1):
            if flags.cancelled or flags.lease_lost:
                raise RunCancelled()
            # The model's shared limits (workers/limits.py) first: waiting there holds no
            # transaction and no budget reservation. A model without limits passes at once.
            permit = await self._admit(spec, request, prompt_tokens)
            try:
                reservation = await self._reserve(ctx, worst, kind if attempt == 0 else "retry")
            except BaseException:
                await asyncio.shield(self.limits.settle(permit, 0))
                raise
            try:
                response = await self._complete_limited(spec, request, permit)
            except TransientModelError as exc:
                await self._settle_failure(ctx, reservation, exc.cost_usd, usage,
                                           f"transient: {exc.message}")
                if attempt == retries:
                    raise RunFailed(f"{exc.message} (gave up after {retries + 1} calls)",
                                    retryable=True) from None
                await self.sleep(self._backoff(attempt, exc.retry_after_s))
                continue
            except DeterministicModelError as exc:
                await self._settle_failure(ctx, reservation, exc.cost_usd, usage,
                                           f"error: {exc.message}")
                raise RunFailed(exc.message) from None
            except BaseException:
                await asyncio.shield(self._release_quietly(reservation, "call interrupted"))
                raise
            # The provider has answered (and billed): the settlement is a task of its own, so
            # a cancellation arriving now cannot leave the call reserved until the sweeper
            # releases it as free; the chunk waits for it before it is stored.
            call = _Usage.of_response(response)
            usage.add(call)
            settling.append(asyncio.ensure_future(
                self._settle(ctx, reservation, response, call, kind)))
            return response
        raise AssertionError("unreachable")

    @property
    def limits(self) -> ModelLimiter:
        """The per-model limiter shared by every worker (Redis with REDIS_URL, else this
        process's); a test may give its own."""
        if self.limiter is None:
            self.limiter = limiter_for(getattr(self.settings, "redis_url", None))
        return self.limiter

    async def _admit(self, spec: ModelSpec, request: ModelRequest,
                     prompt_tokens: int) -> Permit | None:
        """Wait for the model's limits; reserves the worst case (prompt + max_tokens)."""
        if not spec.is_limited:
            return None
        return await self.limits.acquire(spec, prompt_tokens + request.max_tokens,
                                         lease_s=request.timeout_s + LEASE_MARGIN_S)

    async def _complete_limited(self, spec: ModelSpec, request: ModelRequest,
                                permit: Permit | None) -> ModelResponse:
        """The provider call; the limit reservation corrected to the actual usage after it,
        and what the provider said about its limits shared with every worker."""
        if permit is None:
            return await self.client.complete(request)
        try:
            response = await self.client.complete(request)
        except TransientModelError as exc:
            refused = exc.status == 429
            # A refused call used nothing: its reservation comes back. Other failures may
            # have been billed: the reservation stays spent, the lease is returned.
            await self.limits.settle(permit, 0 if refused else None)
            if refused:
                await self.limits.observe(spec, exc.rate_limit, refused=True)
            raise
        except BaseException:
            await asyncio.shield(self.limits.settle(permit, None))
            raise
        used = response.input_tokens + response.output_tokens
        await self.limits.settle(permit, used)
        await self.limits.observe(spec, response.rate_limit, refused=False, used_tokens=used,
                                  elapsed_s=response.latency_ms / 1000)
        return response

    @staticmethod
    def _backoff(attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
        return min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random() / 2)

    async def _reserve(self, ctx: RunContext, worst: Decimal, kind: str) -> Reservation:
        async def work(session: Any) -> Reservation:
            # Lease renewal notices a cancelled batch only every lease/3 seconds: each
            # reservation refuses a skipped run itself, so a cancelled batch stops spending
            # at once (the one-statement path checks inside its UPDATE).
            if ctx.batch.budget_usd is not None and await ProcessingRepository(
                    session).run_status(ctx.run.id or 0) == "skipped":
                raise RunCancelled()
            try:
                return await self._ledger(session).reserve(
                amount=worst, model_name=ctx.model.name, call_kind=kind,
                batch_id=ctx.batch.id, run_id=ctx.run.id, job_id=None,
                ttl_seconds=self.settings.reservation_ttl_seconds,
                batch_has_budget=ctx.batch.budget_usd is not None)
            except BudgetExceeded:
                if await ProcessingRepository(session).run_status(ctx.run.id or 0) == "skipped":
                    raise RunCancelled() from None
                raise

        try:
            if ctx.batch.budget_usd is None:
                # Statements in autocommit: the shared budget day row is held for one
                # statement, not for a transaction's round trips.
                reservation: Reservation = await self._autocommit(work)
            else:
                reservation = await self._commit(work)
        except BudgetExceeded as exc:
            raise BudgetPause(str(exc), exc.needed) from None
        return reservation

    async def _settle(self, ctx: RunContext, reservation: Reservation,
                      response: ModelResponse, call: _Usage, kind: str) -> None:

        if ctx.batch.budget_usd is None:
            # The common case: one autocommit statement settles and counts the call.
            await self._autocommit(lambda connection: self._ledger(connection).settle_call(
                reservation, actual=response.cost_usd, input_tokens=response.input_tokens,
                output_tokens=response.output_tokens, latency_ms=response.latency_ms,
                outcome=kind, run_id=ctx.run.id or 0, levers=levers_of(response)))
            return

        usage = call.frozen()
        if kind == REPAIR:
            usage = replace(usage, repair_calls=1, repair_cost_usd=response.cost_usd)

        async def work(session: Any) -> None:
            await self._ledger(session).settle(
                reservation, actual=response.cost_usd, input_tokens=response.input_tokens,
                output_tokens=response.output_tokens, outcome=kind,
                levers=levers_of(response),
                on_settled=lambda: ProcessingRepository(session).add_usage(
                    ctx.run.id or 0, usage))

        await self._commit(work)

    async def _settle_failure(self, ctx: RunContext, reservation: Reservation, cost: Decimal,
                              usage: _Usage, outcome: str) -> None:
        call = _Usage(0, 0, cost, 0, 1, list_cost_usd=cost)  # no lever behind a failed call
        usage.add(call)

        async def work(session: Any) -> None:
            ledger = self._ledger(session)

            async def record() -> None:
                await ProcessingRepository(session).add_usage(ctx.run.id or 0, call.frozen())

            if cost > 0:
                await ledger.settle(reservation, actual=cost, input_tokens=0, output_tokens=0,
                                    outcome=outcome, on_settled=record)
            else:
                await ledger.release(reservation, outcome, on_released=record)

        await self._commit(work)

    async def _release_quietly(self, reservation: Reservation, outcome: str) -> None:
        try:
            await self._commit(lambda s: self._ledger(s).release(reservation, outcome))
        except Exception:  # the sweeper releases expired reservations anyway
            log.warning("could not release reservation %s", reservation.ledger_id)

    async def _cost_guard(self, ctx: RunContext, limit: Decimal | None) -> None:
        if limit is None:
            return
        async with self.uow(read_only=True) as uow:
            cost, count, grounded = await uow.processing.cost_so_far(ctx.run.id or 0)
        minimum = self.settings.cost_guard_min_fragments
        if count < minimum or cost <= 0:
            return
        per_fragment = cost / grounded if grounded else None
        if per_fragment is None or per_fragment > limit:
            shown = "no grounded fragment" if per_fragment is None else f"${per_fragment:.6f}"
            raise RunStopped(f"cost per grounded fragment ({shown}) exceeds the limit of "
                             f"${limit} after {count} fragments")


def _submissions_per_chunk(history: list[Any]) -> dict[int, int]:
    """How many provider batches each chunk was submitted in (abandoned ones do not count)."""
    counts: dict[int, int] = {}
    for row in history:
        if row.status != "abandoned":
            for index in row.chunks:
                counts[int(index)] = counts.get(int(index), 0) + 1
    return counts


def _record(part: int, kind: str, chunk: Chunk, response: ModelResponse,
            parsed: ParsedAnswer | None, problem: str | None) -> AnswerRecord:
    return AnswerRecord(part=part, call_kind=kind, char_start=chunk.start, char_end=chunk.end,
                        finish_reason=response.finish_reason, content=response.content or "",
                        readable=parsed is not None,
                        strict=parsed.strict if parsed is not None else False, problem=problem)


_SIGNIFICANCE = (RunCancelled, BudgetPause, RunStopped, RunFailed)


def _most_significant(errors: ExceptionGroup[Exception]) -> Exception:
    """The one outcome a run takes when several chunks fail differently at once."""
    flat: list[Exception] = []
    stack: list[Exception] = [errors]
    while stack:
        item = stack.pop()
        if isinstance(item, ExceptionGroup):
            stack.extend(item.exceptions)
        else:
            flat.append(item)
    for kind in _SIGNIFICANCE:
        for item in flat:
            if isinstance(item, kind):
                return item
    log.error("unexpected error while processing chunks", exc_info=flat[0])
    return RunFailed(f"internal error while processing: {type(flat[0]).__name__}",
                     retryable=True)


async def _settled(settling: list[asyncio.Future[None]]) -> None:
    """Wait for a chunk's settlements (even when the chunk is being cancelled); the first
    failure, if any, is raised."""
    if not settling:
        return
    pending = list(settling)
    settling.clear()
    results = await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value
