"""Pipeline overhead: 200 chunks at concurrency 20 through the whole extraction pipeline
(claim, call, parse, ground, lint, persist, settle, events) against the same 200 calls made
directly with `litellm.acompletion`, in one run, against a loopback provider answering in
200 ms (served by a separate process so it does not share our CPU). Direct and pipeline
runs alternate for `--rounds` rounds on one event loop; the report gives every round and the
median ratio (the machine is shared and noisy: one round can be off by 10%).

    .venv/bin/python -m benchmarks.pipeline_overhead [--chunks 200] [--concurrency 20]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ADMIN_DSN = os.environ.get("MMOS_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _paragraphs(code: str, count: int) -> list[str]:
    """75-135-token paragraphs (one chunk each at 150 tokens) of interview sentences, each
    made unique (a real source rarely repeats itself; repeated quotes would make grounding
    search every copy)."""
    from api.demo_data import load_samples
    from domain.chunking import sentence_spans

    text = load_samples()[0]["content"]
    sentences = [text[s.start : s.end].strip() for s in sentence_spans(text)]
    sentences = [s for s in sentences if 40 <= len(s) <= 200 and s[-1] in ".!?"]
    paragraphs, index = [], 0
    for number in range(count):
        parts: list[str] = []
        while sum(len(p) for p in parts) < 330:
            sentence = sentences[index % len(sentences)]
            parts.append(f"{sentence[:-1]} ({code} {number}.{len(parts)}){sentence[-1]}")
            index += 1
        paragraphs.append(" ".join(parts))
    return paragraphs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_provider(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_provider",
            "--port",
            str(port),
            "--latency",
            str(latency),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the fake provider did not start")


def _bench_spec(api_base: str) -> object:
    from domain.llm import ModelSpec

    return ModelSpec(name="bench-mini", litellm_model="openai/gpt-4o-mini", api_base=api_base,
                     input_cost_per_million=Decimal("0.15"),
                     output_cost_per_million=Decimal("0.6"), context_window=128000,
                     max_output_tokens=1024)


async def _direct(api_base: str, texts: list[str], concurrency: int) -> float:
    """The same provider calls the pipeline makes (the gateway's own arguments: messages,
    max_tokens, structured-output schema, no SDK retries), straight to litellm.acompletion."""
    import litellm

    from domain.llm import ModelRequest
    from domain.parsing import FRAGMENTS_JSON_SCHEMA
    from domain.prompt import build_messages
    from workers.gateway import LiteLLMClient

    litellm.suppress_debug_info = True
    arguments = LiteLLMClient()._call_arguments
    spec = _bench_spec(api_base)
    gate = asyncio.Semaphore(concurrency)

    async def one(text: str) -> None:
        request = ModelRequest(model=spec,  # type: ignore[arg-type]
                               messages=build_messages(text, language="en",
                                                       source_type="interview"),
                               max_tokens=1024, json_schema=FRAGMENTS_JSON_SCHEMA, timeout_s=120)
        async with gate:
            response = await litellm.acompletion(**arguments(request))
            assert response.choices[0].message.content

    started = time.perf_counter()
    await asyncio.gather(*(one(text) for text in texts))
    return time.perf_counter() - started


async def _rounds(url: str, api_base: str, chunks: int, concurrency: int, rounds: int
                  ) -> list[tuple[float, float, int]]:
    """(direct seconds, pipeline seconds, chunks done) per round, both sides on one loop, run
    back to back so each round's ratio sees the same machine."""
    from api.container import build_container, worker_pool_size
    from api.settings import Settings
    from db.catalog import ModelRepository
    from db.jobs import JobQueue
    from db.sources import SourceRepository
    from domain.services.processing import start_processing
    from domain.sources import SourceLimits, validate_new_source
    from workers.gateway import LiteLLMClient
    from workers.pipeline import Pipeline

    settings = Settings(
        env="test",
        database_url=url,
        llm_concurrency=concurrency,
        chunk_max_tokens=150,
        chunk_overlap_tokens=0,
        max_output_tokens=1024,
        _env_file=None,
    )  # type: ignore[call-arg]
    # Sized as a worker host sizes its pool.
    runtime = await build_container(settings, database_url=url,
                                    pool_size=worker_pool_size(settings))
    try:
        async with runtime.transaction() as session:
            await ModelRepository(session).register(
                {
                    "name": "bench-mini",
                    "litellm_model": "openai/gpt-4o-mini",
                    "api_base": api_base,
                    "input_cost_per_million": Decimal("0.15"),
                    "output_cost_per_million": Decimal("0.6"),
                    "price_source": "override",
                    "context_window": 128000,
                    "max_output_tokens": 1024,
                }
            )
        client = LiteLLMClient()
        pipeline = Pipeline(runtime, client, owner="bench")

        async def run(code: str, count: int) -> tuple[float, int]:
            content = "\n\n".join(_paragraphs(code, count))
            async with runtime.transaction() as session:
                source = await SourceRepository(session).add(
                    validate_new_source(
                        {
                            "source_code": code,
                            "title": "bench",
                            "source_type": "interview",
                            "content": content,
                            "language": "en",
                        },
                        SourceLimits(),
                    )
                )
            await start_processing(
                runtime.ports,
                source_ids=[source.id or 0],
                model_names=["bench-mini"],
                strategy=None,
                budget_usd=None,
            )
            started = time.perf_counter()
            async with runtime.transaction() as session:
                job = await JobQueue(session).claim("bench", 600)
            assert job is not None
            status = await pipeline.run_job(job)
            elapsed = time.perf_counter() - started
            assert status == "completed", status
            async with runtime.read() as session:
                from sqlalchemy import text

                done = (
                    await session.execute(
                        text("SELECT chunks_done FROM source_processing WHERE source_id = :s"),
                        {"s": source.id},
                    )
                ).scalar_one()
            return elapsed, int(done)

        texts = _paragraphs("DIRECT", chunks)
        await _direct(api_base, texts[:concurrency], concurrency)  # warm-up
        await run("BENCH_WARMUP", concurrency)  # imports and caches, as the direct warm-up
        measured = []
        for number in range(rounds):
            direct = await _direct(api_base, texts, concurrency)
            pipeline_s, done = await run(f"BENCH_{number + 1}", chunks)
            measured.append((direct, pipeline_s, done))
        return measured
    finally:
        await runtime.close()


async def _admin(*statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    name = f"mmos_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    provider, api_base = _start_provider(args.latency)
    try:
        # As a worker process boots: LiteLLM and its tokenizer loaded, the imports frozen.
        from api.container import warm_up_model_client

        warm_up_model_client()
        rounds = asyncio.run(_rounds(url, api_base, args.chunks, args.concurrency, args.rounds))
    finally:
        provider.terminate()
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    ideal = args.chunks / args.concurrency * args.latency
    print(
        f"pipeline overhead benchmark: {args.chunks} calls, concurrency {args.concurrency}, "
        f"provider latency {args.latency * 1000:.0f} ms, {args.rounds} rounds"
    )
    print(f"  ideal (calls / concurrency x latency): {ideal:.3f} s")
    print("  round   direct s   pipeline s   chunks   pipeline/direct   overhead ms/call")
    for number, (direct, pipeline, done) in enumerate(rounds, 1):
        print(f"  {number:5d}   {direct:8.3f}   {pipeline:10.3f}   {done:6d}   "
              f"{pipeline / direct:15.3f}   {(pipeline - direct) / args.chunks * 1000:16.2f}")
    direct = statistics.median(r[0] for r in rounds)
    pipeline = statistics.median(r[1] for r in rounds)
    ratio = statistics.median(r[1] / r[0] for r in rounds)
    print(f"  median direct litellm.acompletion: {direct:7.3f} s  ({direct / ideal:.2f}x ideal)")
    print(f"  median MMOS pipeline:              {pipeline:7.3f} s  "
          f"({pipeline / ideal:.2f}x ideal)")
    print(f"  median pipeline / direct:          {ratio:7.3f}x  (target <= 1.2x)")
    print(f"  overhead per call (medians): {(pipeline - direct) / args.chunks * 1000:.2f} ms wall, "
          f"{(pipeline - direct) / args.chunks * args.concurrency * 1000:.1f} ms per call slot")


if __name__ == "__main__":
    main()
