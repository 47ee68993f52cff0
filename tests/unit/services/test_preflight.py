"""Pre-flight refusals of a start (domain/preflight.py, domain/services/batches.py
`checked_models`) against in-memory fakes: a key the live workers lack, a price unknown
under a budget, a context window too small for one call. Each refusal names the model's
index in the request and nothing is queued."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import InvalidInput
from domain.preflight import ALIVE_SECONDS, MIN_CHUNK_TOKENS, prompt_tokens
from domain.services import processing
from domain.strategy import Plan
from tests.support.fakes import FakeUnitOfWorkFactory, fakes_of, make_ports

OPENAI_MISSING = {"openai": ("OPENAI_API_KEY",)}


def nothing_written(fake: FakeUnitOfWorkFactory) -> None:
    assert fake.state.batches == {}
    assert fake.state.runs == {}
    assert fake.state.jobs == {}
    assert fake.dispatched == []


def issues(exc: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[tuple[str, ...], str]]:
    return [(issue.path, issue.message) for issue in exc.value.issues]


async def start(ports, models: list[str], *, strategy: str | None = None,
                budget: Decimal | None = None, sources: int = 1):
    fake = fakes_of(ports)
    ids = [fake.add_source().id or 0 for _ in range(sources)]
    return await processing.start_processing(ports, source_ids=ids, model_names=models,
                                             strategy=strategy, budget_usd=budget)


def setup() -> tuple[object, FakeUnitOfWorkFactory]:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("local", litellm_model="mmos/rules-fast", is_local=True,
                   price=("0", "0"))
    fake.add_model("mini", litellm_model="openai/gpt-4o-mini")
    fake.add_model("bare", litellm_model="gpt-4o-mini")
    fake.add_model("haiku", litellm_model="anthropic/claude-haiku-4-5")
    fake.add_model("vllm", litellm_model="openai/llama", api_base="http://127.0.0.1:8000/v1")
    fake.add_model("own", litellm_model="openai/llama", api_base="http://127.0.0.1:8000/v1",
                   api_key_env="LOCAL_LLAMA_API_KEY")
    return ports, fake


# --- provider keys ---------------------------------------------------------------------------


async def test_a_model_whose_provider_key_the_live_worker_lacks_is_refused_naming_it() -> None:
    # Given one live worker without OpenAI's key
    ports, fake = setup()
    fake.add_worker("host-1", providers=["anthropic"], missing=OPENAI_MISSING)
    # When
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["local", "mini"])
    # Then: the path is the model's index in the request, the message names model and key
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "1")
    assert "'mini'" in message and "openai" in message and "OPENAI_API_KEY" in message
    assert "host-1" in message and "restart" in message
    nothing_written(fake)


async def test_a_bare_openai_model_name_is_checked_against_openai() -> None:
    ports, fake = setup()
    fake.add_worker("host-1", missing=OPENAI_MISSING)
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["bare"])
    assert [path for path, _ in issues(exc)] == [("input", "models", "0")]
    nothing_written(fake)


async def test_the_same_start_is_accepted_once_the_worker_holds_the_key() -> None:
    ports, fake = setup()
    fake.add_worker("host-1", providers=["openai"], missing={"anthropic": ("ANTHROPIC_API_KEY",)})
    started = await start(ports, ["mini", "bare", "local"])
    assert len(started.batch_ids) == 3
    assert fake.dispatched == list(fake.state.jobs)


async def test_every_live_worker_must_hold_the_key_since_any_may_claim_the_job() -> None:
    # Given two live workers, one with the key and one without
    ports, fake = setup()
    fake.add_worker("host-1", providers=["openai"])
    fake.add_worker("host-2", missing=OPENAI_MISSING)
    # When
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["mini"])
    # Then
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "0")
    assert "1 of the 2 workers" in message and "host-2" in message and "host-1" not in message
    nothing_written(fake)


async def test_a_worker_not_seen_lately_does_not_count() -> None:
    ports, fake = setup()
    fake.add_worker("gone", missing=OPENAI_MISSING, seconds_since_seen=ALIVE_SECONDS + 1)
    fake.add_worker("live", providers=["openai"])
    started = await start(ports, ["mini"])
    assert len(started.batch_ids) == 1
    assert fakes_of(ports).called("workers.reach") == [((ALIVE_SECONDS,), {})]


async def test_with_no_worker_seen_keys_are_not_refused() -> None:
    # Nothing tells where the calls will run: the jobs wait for a worker, and a worker
    # without the key fails the run at its first call (workers/gateway.py).
    ports, fake = setup()
    fake.add_worker("gone", missing=OPENAI_MISSING, seconds_since_seen=600)
    started = await start(ports, ["mini", "haiku"])
    assert len(started.batch_ids) == 2


async def test_a_worker_that_reported_nothing_refuses_nothing() -> None:
    # An older worker (or one whose LiteLLM check failed) reports nothing: no evidence.
    ports, fake = setup()
    fake.add_worker("old")
    started = await start(ports, ["mini"])
    assert len(started.batch_ids) == 1


async def test_a_provider_litellm_names_no_key_for_is_never_refused() -> None:
    ports, fake = setup()
    fake.add_model("hosted", litellm_model="hosted_vllm/llama")
    fake.add_model("unknown-route", litellm_model="some-model-name")
    fake.add_worker("host-1", missing=OPENAI_MISSING)
    started = await start(ports, ["hosted", "unknown-route"])
    assert len(started.batch_ids) == 2


async def test_a_custom_base_with_apikeyenv_needs_that_variable_on_every_worker() -> None:
    # Given a worker holding OpenAI's key but not the model's own variable
    ports, fake = setup()
    fake.add_worker("host-1", providers=["openai"], key_envs=["OTHER_API_KEY"])
    # When
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["vllm", "own"])
    # Then
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "1")
    assert "'own'" in message and "LOCAL_LLAMA_API_KEY" in message and "apiKeyEnv" in message
    nothing_written(fake)


async def test_a_custom_base_with_apikeyenv_is_accepted_when_the_variable_is_set() -> None:
    ports, fake = setup()
    # No OpenAI key at all: a model with its own variable never uses the provider's key.
    fake.add_worker("host-1", missing=OPENAI_MISSING, key_envs=["LOCAL_LLAMA_API_KEY"])
    started = await start(ports, ["own"])
    assert len(started.batch_ids) == 1


async def test_a_custom_base_without_apikeyenv_and_local_models_need_no_key() -> None:
    ports, fake = setup()
    fake.add_worker("host-1", missing=OPENAI_MISSING)
    started = await start(ports, ["vllm", "local"])
    assert len(started.batch_ids) == 2


async def test_process_batch_strategies_are_refused_the_same_way() -> None:
    # Given a progressive plan whose first step runs only the cheapest model
    ports, fake = setup()
    fake.add_worker("host-1", providers=["openai"],
                    missing={"anthropic": ("ANTHROPIC_API_KEY",)})
    # When every candidate is checked, the dearer model of a later step included
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["local", "mini", "haiku"], strategy="progressive", sources=2)
    # Then
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "2")
    assert "anthropic" in message and "ANTHROPIC_API_KEY" in message
    nothing_written(fake)


# --- prices under a budget -------------------------------------------------------------------


async def test_an_unpriced_model_under_a_budget_is_refused_at_its_request_index() -> None:
    # Given a duplicate before the unpriced model: the path is its index in the request
    ports, fake = setup()
    fake.add_model("free", price=None)
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["local", "local", "free"], budget=Decimal(5))
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "2")
    assert "'free'" in message and "no known price" in message
    nothing_written(fake)


async def test_an_unpriced_model_without_a_budget_is_accepted() -> None:
    ports, fake = setup()
    fake.add_model("free", price=None)
    started = await start(ports, ["free"])
    assert len(started.batch_ids) == 1


# --- context windows -------------------------------------------------------------------------


def needed(max_output: int) -> int:
    return prompt_tokens() + MIN_CHUNK_TOKENS + max_output


async def test_a_context_window_that_cannot_hold_one_call_is_refused_with_the_numbers() -> None:
    # Given a model whose window holds its output but not the prompt and a chunk as well
    ports, fake = setup()
    fake.add_model("tiny", context_window=1024, max_output_tokens=1000)
    # When
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["local", "local", "tiny"])
    # Then
    [(path, message)] = issues(exc)
    assert path == ("input", "models", "2")
    assert "'tiny'" in message and "1,024" in message and f"{needed(1000):,}" in message
    assert f"~{prompt_tokens():,}" in message and f"({MIN_CHUNK_TOKENS})" in message
    assert "(1,000)" in message and "contextWindow" in message
    nothing_written(fake)


async def test_the_output_counted_is_the_settings_cap_when_lower() -> None:
    # The pipeline asks for min(model's max output, MMOS_MAX_OUTPUT_TOKENS): 256 here.
    ports = make_ports(max_output_tokens=256)
    fake = fakes_of(ports)
    fake.add_model("small", context_window=needed(256), max_output_tokens=100_000)
    started = await start(ports, ["small"])
    assert len(started.batch_ids) == 1


@pytest.mark.parametrize(("window", "refused"), [(0, True), (1, False)])
async def test_the_context_window_boundary(window: int, refused: bool) -> None:
    ports, fake = setup()
    fake.add_model("edge", context_window=needed(512) - 1 + window, max_output_tokens=512)
    if refused:
        with pytest.raises(InvalidInput):
            await start(ports, ["edge"])
        nothing_written(fake)
    else:
        assert len((await start(ports, ["edge"])).batch_ids) == 1


# --- all at once -----------------------------------------------------------------------------


async def test_every_model_s_refusals_come_in_one_answer_in_request_order() -> None:
    # Given a keyless unpriced model, a small-window one and a fine one, under a budget
    ports, fake = setup()
    fake.add_model("nokey-free", litellm_model="openai/x", price=None)
    fake.add_model("tiny", context_window=600, max_output_tokens=512)
    fake.add_worker("host-1", missing=OPENAI_MISSING)
    # When
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["local", "tiny", "nokey-free"], budget=Decimal(1))
    # Then
    found = issues(exc)
    assert [path for path, _ in found] == [("input", "models", "1"),
                                           ("input", "models", "2"),
                                           ("input", "models", "2")]
    assert "context window" in found[0][1]
    assert "no known price" in found[1][1] and "OPENAI_API_KEY" in found[2][1]
    nothing_written(fake)


async def test_unknown_models_are_refused_before_any_pre_flight() -> None:
    ports, fake = setup()
    fake.add_worker("host-1", missing=OPENAI_MISSING)
    with pytest.raises(InvalidInput) as exc:
        await start(ports, ["mini", "nope"])
    assert [path for path, _ in issues(exc)] == [("input", "models", "1")]
    assert fake.called("workers.reach") == []


async def test_a_designated_reference_the_workers_cannot_call_gives_way_to_the_dearest() -> None:
    # Given: a conservative plan whose designated reference model lacks its key on the worker
    ports, fake = setup()
    fake.add_model("cheap", price=("0.1", "0.2"))
    fake.add_model("dear", price=("10", "20"))
    fake.state.settings["quality_reference_model"] = "haiku"
    fake.add_worker("host-1", missing={"anthropic": ("ANTHROPIC_API_KEY",)})
    # When
    started = await start(ports, ["dear", "cheap"], strategy="conservative")
    # Then: the plan goes on without it, referenced by the dearest candidate
    batches = [fake.state.batches[i] for i in started.batch_ids]
    assert [b.model_name for b in batches] == ["cheap", "dear"]
    assert Plan.from_json(batches[0].config["plan"]).reference_model == "dear"
