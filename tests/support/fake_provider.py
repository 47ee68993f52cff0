"""A loopback OpenAI-compatible chat server that tests script: content, usage, latency, faults.

Tests talk to it over real HTTP through LiteLLM (`openai/<name>` + `api_base=provider.url`), so
the whole client stack (SDK, retries, error mapping) is exercised without any real provider.

Run standalone for manual demos: `python -m tests.support.fake_provider --port 8765`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.prompt import source_text_of
from tests.support.fake_batches import FakeBatches

Fault = Literal["429", "500", "400", "timeout", "malformed", "empty", "redirect"]

DEFAULT_MODEL = "fake-model"
_TIMEOUT_SLEEP_S = 60.0
_CATEGORIES = ("cognitive", "behavioral", "values_beliefs", "emotional", "social", "biographical")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted answer of the fake provider.

    Parameters:
      content: the assistant message content.
      prompt_tokens / completion_tokens: reported usage; estimated from text when None.
      latency: seconds to wait before answering.
      finish_reason: "stop" or "length".
      fault: answer with a failure instead of `content` ("429", "500", "400", "timeout",
        "malformed" body, "empty" content).
      retry_after: the Retry-After header value sent with a 429.
      redirect_to: with fault "redirect", the URL a 307 answer points at.
      cached_tokens / cache_write_tokens: reported cache reads (OpenAI
        `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`) and
        cache writes (Anthropic `cache_creation_input_tokens`); from the prompt cache when None.
    """

    content: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency: float = 0.0
    finish_reason: str = "stop"
    fault: Fault | None = None
    retry_after: str | None = None
    redirect_to: str | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the fake received in one POST /v1/chat/completions."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    temperature: float | None
    response_format: dict[str, Any] | None
    body: dict[str, Any] = field(repr=False)
    received_at: float = 0.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)


Responder = Callable[[RecordedRequest], Scripted]


# ---------------------------------------------------------------------------------------------
# Answer builders: grounded fragments made of the source text the prompt carries.


def sentences_of(text: str) -> list[str]:
    """Sentences of `text`, stripped, exactly as they appear in it (one per line break too)."""
    return [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip()]


def fragment_for(sentence: str, ordinal: int) -> dict[str, Any]:
    """One answer fragment whose quote is the sentence verbatim."""
    return {
        "content": sentence,
        "quote": sentence,
        "category": _CATEGORIES[ordinal % len(_CATEGORIES)],
        "subcategory": "",
        "fragment_type": "direct_quote",
        "context": "",
        "insight": f"Statement {ordinal + 1} of the speaker.",
        "relevance": 7,
        "confidence": 0.9,
        "tags": ["fake"],
    }


def answer_json(fragments: list[dict[str, Any]]) -> str:
    """The answer body the prompt asks for."""
    return json.dumps({"fragments": fragments}, ensure_ascii=False)


def grounded_fragments(request: RecordedRequest) -> list[dict[str, Any]]:
    """One fragment per sentence of the source text between the prompt markers."""
    text = source_text_of(_string_messages(request.messages)) or ""
    return [fragment_for(sentence, i) for i, sentence in enumerate(sentences_of(text))]


def echo_responder(request: RecordedRequest) -> Scripted:
    """Default behaviour: a grounded fragment per sentence, with exact quotes."""
    return Scripted(content=answer_json(grounded_fragments(request)))


def inventing_responder(
    invented_quote: str = "I have always wanted to live on the moon.",
) -> Responder:
    """Grounded fragments plus one whose quote is not in the source."""

    def respond(request: RecordedRequest) -> Scripted:
        fragments = grounded_fragments(request)
        fragments.append({**fragment_for(invented_quote, len(fragments)), "relevance": 10})
        return Scripted(content=answer_json(fragments))

    return respond


def half_responder(request: RecordedRequest) -> Scripted:
    """Only every other grounded fragment: a model with half the recall."""
    return Scripted(content=answer_json(grounded_fragments(request)[::2]))


def fenced_responder(request: RecordedRequest) -> Scripted:
    """The grounded answer wrapped in a ```json code fence with a line of prose before it."""
    body = answer_json(grounded_fragments(request))
    return Scripted(content=f"Here are the fragments:\n```json\n{body}\n```")


def _string_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"role": str(m.get("role", "")), "content": m["content"]}
        for m in messages
        if isinstance(m.get("content"), str)
    ]


# ---------------------------------------------------------------------------------------------
# Rate limits, enforced the way providers do (off until `FakeProvider.limit`).


@dataclass
class _Bucket:
    """A provider's limit: a bucket of `burst_seconds` of the per-minute rate (OpenAI's is a
    full minute), refilled continuously; `x-ratelimit-reset-*` is the time until full."""

    per_minute: int
    burst_seconds: float
    level: float = -1.0
    at: float = 0.0

    @property
    def capacity(self) -> float:
        return self.per_minute * self.burst_seconds / 60.0

    def fill(self, now: float) -> float:
        if self.level < 0:
            self.level, self.at = self.capacity, now
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_minute / 60.0)
        self.at = now
        return self.level

    def wait_for(self, need: float) -> float:
        return max(0.0, (min(need, self.capacity) - self.level) * 60.0 / self.per_minute)

    def reset_s(self) -> float:
        return (self.capacity - self.level) * 60.0 / self.per_minute


@dataclass
class LimitStats:
    """What the limits did: calls admitted (with their tokens) and refused with a 429."""

    admitted: int = 0
    admitted_tokens: int = 0
    refused: int = 0
    log: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, tokens)


class ProviderLimits:
    """Per-model RPM and TPM (input plus output tokens) of the fake. A request is admitted
    when one request and its whole usage (prompt + completion, known to the fake before it
    answers) fit what remains; otherwise a 429 with `Retry-After` (and `retry-after-ms`)
    saying when they would fit. Every answer of a limited model carries
    `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` (requests
    and tokens)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, _Bucket]] = {}
        self.stats: dict[str, LimitStats] = {}

    def set(self, model: str, *, rpm: int | None, tpm: int | None,
            burst_seconds: float = 60.0) -> None:
        with self._lock:
            buckets = {}
            if rpm:
                buckets["requests"] = _Bucket(rpm, burst_seconds)
            if tpm:
                buckets["tokens"] = _Bucket(tpm, burst_seconds)
            self._buckets[_served_name(model)] = buckets
            self.stats[_served_name(model)] = LimitStats()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.stats.clear()

    def check(self, model: str, tokens: int) -> tuple[bool, dict[str, str]]:
        """(admitted, headers) for a request of `tokens`; an admitted one is counted."""
        with self._lock:
            buckets = self._buckets.get(model)
            if not buckets:
                return True, {}
            now = time.monotonic()
            needs = {"requests": 1, "tokens": tokens}
            for bucket in buckets.values():
                bucket.fill(now)
            wait = max((b.wait_for(needs[k]) for k, b in buckets.items()), default=0.0)
            stats = self.stats[model]
            if wait <= 0:
                for kind, bucket in buckets.items():
                    bucket.level -= min(needs[kind], bucket.capacity)
                stats.admitted += 1
                stats.admitted_tokens += tokens
                stats.log.append((now, tokens))
            else:
                stats.refused += 1
            headers: dict[str, str] = {}
            for kind, bucket in buckets.items():
                headers[f"x-ratelimit-limit-{kind}"] = str(bucket.per_minute)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
                headers[f"x-ratelimit-reset-{kind}"] = f"{bucket.reset_s():.3f}s"
            if wait > 0:
                headers["retry-after"] = str(max(1, math.ceil(wait)))
                headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            return wait <= 0, headers

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {model: {"admitted": st.admitted, "admitted_tokens": st.admitted_tokens,
                            "refused": st.refused, "log": list(st.log)}
                    for model, st in self.stats.items()}


# ---------------------------------------------------------------------------------------------
# The server.


class FakeProvider:
    """Scriptable OpenAI-compatible server on 127.0.0.1, run by uvicorn in a background thread.

    Parameters:
      default: the responder used when no scripted answer is queued for a model.
      port: the port to bind; 0 picks a free one.
    """

    def __init__(self, default: Responder = echo_responder, *, port: int = 0) -> None:
        self._default = default
        self._port = port
        self._scripts: dict[str, deque[Scripted]] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ids = itertools.count(1)
        self.prompt_cache = PromptCache()  # cached-token usage on repeated prefixes
        self.batches = FakeBatches(self)  # /v1/files and /v1/batches (tests/support/fake_batches)
        self.limits = ProviderLimits()  # RPM / TPM per model, off until `limit()`
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/limits", self._limit_stats, methods=["GET"]),
                Route("/v1/messages", self._anthropic_messages, methods=["POST"]),
                *self.batches.routes(),
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to pass as `api_base`, ending in /v1."""
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> FakeProvider:
        """Bind and serve in a daemon thread; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=1024,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._loop, self._stopped = None, None
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving; requests sleeping on a `timeout` fault are released."""
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server, self._thread, self._loop, self._stopped = None, None, None, None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------

    def script(self, model: str, *responses: Scripted) -> None:
        """Queue answers for `model` (with or without the `openai/` prefix; "*" for any model)."""
        with self._lock:
            self._scripts.setdefault(_served_name(model), deque()).extend(responses)

    def limit(self, model: str, *, rpm: int | None = None, tpm: int | None = None,
              burst_seconds: float = 60.0) -> None:
        """Enforce `rpm` requests and `tpm` tokens (input + output) per minute on `model`,
        as providers do (see `ProviderLimits`); both None switches the limits off."""
        self.limits.set(model, rpm=rpm, tpm=tpm, burst_seconds=burst_seconds)

    def set_default(self, responder: Responder) -> None:
        """Answer with `responder` whenever no scripted answer is queued."""
        self._default = responder

    def reset(self) -> None:
        """Forget queued scripts and recorded requests; back to the echo responder."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
        self._default = echo_responder
        self.prompt_cache.reset()
        self.batches.reset()
        self.limits.reset()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every chat request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """Requests received for one model."""
        served = _served_name(model)
        return [r for r in self.requests if r.model == served]

    def _next_answer(self, request: RecordedRequest) -> Scripted:
        with self._lock:
            self._requests.append(request)
            for key in (request.model, "*"):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return self._default(request)

    # -- HTTP handlers --------------------------------------------------------------------------

    async def _models(self, _: Request) -> Response:
        with self._lock:
            names = sorted({DEFAULT_MODEL, *self._scripts} - {"*"})
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def _received(self, http_request: Request,
                        recorded: Callable[[dict[str, Any]], RecordedRequest]
                        ) -> tuple[RecordedRequest, Scripted] | Response:
        """The request as recorded and its scripted answer, or the 400 a malformed body
        gets (the caller waits out the answer's latency)."""
        try:
            body = json.loads(await http_request.body())
        except ValueError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is required", "invalid_request_error")
        request = replace(recorded(body), headers={
            key.lower(): value for key, value in http_request.headers.items()})
        answer = self._next_answer(request)
        return request, answer

    async def _chat(self, http_request: Request) -> Response:
        received = await self._received(http_request, _recorded)
        if isinstance(received, Response):
            return received
        request, answer = received
        limit_headers: dict[str, str] = {}
        if answer.fault in (None, "empty"):
            admitted, limit_headers = self.limits.check(request.model,
                                                        _total_tokens(request, answer))
            if not admitted:
                return _error(429, "Rate limit reached for tokens or requests per minute",
                              "requests", headers=limit_headers)
        if answer.latency:
            await asyncio.sleep(answer.latency)
        response = await self._respond(request, answer)
        response.headers.update(limit_headers)
        return response

    async def _limit_stats(self, _: Request) -> Response:
        return JSONResponse(self.limits.summary())

    async def _respond(self, request: RecordedRequest, answer: Scripted) -> Response:
        if answer.fault == "429":
            headers = {"retry-after": answer.retry_after} if answer.retry_after else {}
            return _error(429, "Rate limit reached for requests", "requests", headers=headers)
        if answer.fault == "500":
            return _error(500, "The server had an error processing the request", "server_error")
        if answer.fault == "400":
            return _error(400, "Invalid value for 'messages'", "invalid_request_error")
        if answer.fault == "timeout":
            await self._sleep_until_stopped(_TIMEOUT_SLEEP_S)
            return _error(504, "gave up waiting", "server_error")
        if answer.fault == "redirect":
            return Response(status_code=307, headers={"location": answer.redirect_to or "/"})
        if answer.fault == "malformed":
            return Response('{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        content = "" if answer.fault == "empty" else answer.content
        return JSONResponse(self._completion(request, replace(answer, content=content)))

    async def _sleep_until_stopped(self, seconds: float) -> None:
        # Waking on stop keeps shutdown prompt: a parked request must not hold the server open.
        if self._stopped is None:
            self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def _completion(self, request: RecordedRequest, answer: Scripted) -> dict[str, Any]:
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(len(str(m.get("content") or "")) for m in request.messages) // 4 + 1
        completion_tokens = answer.completion_tokens
        if completion_tokens is None:
            completion_tokens = len(answer.content) // 4 + 1
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.content},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                **self.prompt_cache.openai_usage(request, answer, prompt_tokens),
            },
        }

    # -- Anthropic Messages ---------------------------------------------------------------------

    async def _anthropic_messages(self, http_request: Request) -> Response:
        """POST /v1/messages as Anthropic answers it (LiteLLM's `anthropic/<model>` with
        `api_base` = the fake's root calls `{api_base}/v1/messages`): the same scripts, faults
        and content builders; usage with cache creation on the first request whose system
        prefix carries `cache_control`, cache reads on its repeats."""
        received = await self._received(http_request, _recorded_anthropic)
        if isinstance(received, Response):
            return received
        request, answer = received
        if answer.latency:
            await asyncio.sleep(answer.latency)
        if answer.fault is not None and answer.fault != "empty":
            return await self._respond(request, answer)
        content = "" if answer.fault == "empty" else answer.content
        return JSONResponse(self._anthropic_message(request, replace(answer, content=content)))

    def _anthropic_message(self, request: RecordedRequest, answer: Scripted) -> dict[str, Any]:
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(len(_text(m.get("content"))) for m in request.messages) // 4 + 1
        completion_tokens = answer.completion_tokens
        if completion_tokens is None:
            completion_tokens = len(answer.content) // 4 + 1
        read, written = self.prompt_cache.anthropic_usage(request, answer, prompt_tokens)
        stop = "max_tokens" if answer.finish_reason == "length" else "end_turn"
        return {
            "id": f"msg_fake_{next(self._ids)}_{uuid.uuid4().hex[:8]}",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [{"type": "text", "text": answer.content}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                # Anthropic's input_tokens leaves out the cache reads and writes.
                "input_tokens": prompt_tokens - read - written,
                "output_tokens": completion_tokens,
                "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
            },
        }


class PromptCache:
    """Deterministic prompt caching of the fake, per model, keyed by the prompt's first
    message (the stable prefix), its tokens estimated from its length like all usage here.

    OpenAI-style chat reports cached tokens only once switched on (`enable()`; existing tests
    see exactly the usage they always did): a repeated prefix of at least `min_tokens` tokens
    reports `prompt_tokens_details.cached_tokens` = its tokens rounded down to a multiple of
    128, as OpenAI does. The Anthropic endpoint always caches a system prefix marked
    `cache_control` (of at least `min_tokens`): written on its first request, read after.
    """

    BLOCK = 128

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = False
        self.min_tokens = 1024
        self._seen: set[tuple[str, str, str]] = set()

    def enable(self, *, min_tokens: int = 1024) -> None:
        """Report cached tokens on repeated prefixes of OpenAI-style chat requests."""
        with self._lock:
            self.enabled, self.min_tokens = True, min_tokens

    def reset(self) -> None:
        """Forget every cached prefix; OpenAI-style caching off, thresholds back to 1024."""
        with self._lock:
            self.enabled, self.min_tokens = False, 1024
            self._seen.clear()

    @staticmethod
    def prefix_tokens(prefix: str) -> int:
        return len(prefix) // 4

    def _hit(self, kind: str, model: str, prefix: str) -> bool:
        """True when the prefix was cached before; remembers it either way."""
        key = (kind, model, prefix)
        with self._lock:
            seen = key in self._seen
            self._seen.add(key)
        return seen

    def openai_usage(self, request: RecordedRequest, answer: Scripted,
                     prompt_tokens: int) -> dict[str, Any]:
        if answer.cached_tokens is not None:
            return {"prompt_tokens_details": {"cached_tokens": answer.cached_tokens}}
        if not self.enabled:
            return {}
        prefix = _text(request.messages[0].get("content")) if request.messages else ""
        tokens = self.prefix_tokens(prefix)
        cached = 0
        if tokens >= self.min_tokens and self._hit("openai", request.model, prefix):
            cached = min(tokens // self.BLOCK * self.BLOCK, prompt_tokens)
        return {"prompt_tokens_details": {"cached_tokens": cached}}

    def anthropic_usage(self, request: RecordedRequest, answer: Scripted,
                        prompt_tokens: int) -> tuple[int, int]:
        """(cache read, cache write) tokens of an Anthropic request."""
        if answer.cached_tokens is not None or answer.cache_write_tokens is not None:
            return answer.cached_tokens or 0, answer.cache_write_tokens or 0
        system = request.body.get("system")
        blocks = system if isinstance(system, list) else []
        if not any(isinstance(b, dict) and b.get("cache_control") for b in blocks):
            return 0, 0
        prefix = _text(system)
        tokens = min(self.prefix_tokens(prefix), prompt_tokens)
        if tokens < self.min_tokens:
            return 0, 0
        if self._hit("anthropic", request.model, prefix):
            return tokens, 0
        return 0, tokens


def _total_tokens(request: RecordedRequest, answer: Scripted) -> int:
    """Prompt plus completion tokens the answer will report (as `_completion` counts them)."""
    prompt = answer.prompt_tokens
    if prompt is None:
        prompt = sum(len(str(m.get("content") or "")) for m in request.messages) // 4 + 1
    completion = answer.completion_tokens
    if completion is None:
        completion = (0 if answer.fault == "empty" else len(answer.content)) // 4 + 1
    return prompt + completion


def _served_name(model: str) -> str:
    # LiteLLM strips the `openai/` routing prefix before sending the model name.
    return model.removeprefix("openai/")


def _recorded(body: dict[str, Any]) -> RecordedRequest:
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    response_format = body.get("response_format")
    return RecordedRequest(
        model=str(body.get("model", "")),
        messages=list(body["messages"]),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        temperature=body.get("temperature"),
        response_format=response_format if isinstance(response_format, dict) else None,
        body=body,
        received_at=time.monotonic(),
    )


def _text(content: Any) -> str:
    """A message's text: the string, or its text blocks joined."""
    if isinstance(content, list):
        return "".join(str(b.get("text") or "") for b in content if isinstance(b, dict))
    return str(content or "")


def _recorded_anthropic(body: dict[str, Any]) -> RecordedRequest:
    # As chat messages: the system prompt first, then each message's text.
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text(body["system"])})
    messages.extend({"role": str(m.get("role", "")), "content": _text(m.get("content"))}
                    for m in body["messages"] if isinstance(m, dict))
    max_tokens = body.get("max_tokens")
    return RecordedRequest(
        model=str(body.get("model", "")),
        messages=messages,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        temperature=body.get("temperature"),
        response_format=None,
        body=body,
        received_at=time.monotonic(),
    )


def _error(
    status: int, message: str, kind: str, *, headers: dict[str, str] | None = None
) -> Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
    return JSONResponse(payload, status_code=status, headers=headers)


def main() -> None:
    """Serve the echo responder on a fixed port until interrupted."""
    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible fake provider")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--model", action="append", default=None,
                        help="a model --rpm/--tpm limit (repeatable; default fake-model)")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per minute")
    parser.add_argument("--burst-seconds", type=float, default=60.0,
                        help="seconds of the rate a limit's bucket holds")
    args = parser.parse_args()

    def responder(request: RecordedRequest) -> Scripted:
        return dataclasses.replace(echo_responder(request), latency=args.latency)

    provider = FakeProvider(responder, port=args.port)
    if args.rpm or args.tpm:
        for model in args.model or [DEFAULT_MODEL]:
            provider.limit(model, rpm=args.rpm, tpm=args.tpm, burst_seconds=args.burst_seconds)
    provider.start()
    print(f"fake provider on {provider.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        provider.stop()


if __name__ == "__main__":
    main()
