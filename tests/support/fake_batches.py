"""The fake provider's OpenAI-style Files and Batch API: `/v1/files` and `/v1/batches`.

A batch's lines are answered by the provider's own responders (the same answers, usage and
cached-token behaviour as `/v1/chat/completions`), once the batch's delay has passed. Tests
steer the batch lifecycle: a delay before completion, lines that fail, and expiry with only
some results.

OpenAI's semantics, as documented: a batch goes validating → in_progress → finalizing →
completed (or expired after its completion window, or failed, or cancelled); results are a
JSONL output file of `{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}` lines, failed lines go to an error file; an expired batch keeps the results it had.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from email.parser import BytesParser
from email.policy import default
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from tests.support.fake_provider import FakeProvider


@dataclass
class BatchBehaviour:
    """How the fake's next batches end.

    delay_s: seconds from creation to the end.
    fail: custom_ids answered with a 500 in the error file.
    expire_after: when set, batches expire with only this many lines answered (the others go
      to the error file as `batch_expired`).
    retrieve_latency_s: seconds each retrieve of the batch takes.
    """

    delay_s: float = 0.2
    fail: set[str] = field(default_factory=set)
    expire_after: int | None = None
    retrieve_latency_s: float = 0.0  # each look at the batch takes this long to answer


@dataclass
class FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any]
    created_at: float
    behaviour: BatchBehaviour
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    retrieved: int = 0
    custom_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        total = len(self.custom_ids)
        done = self.status in ("completed", "expired", "failed", "cancelled")
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": None,
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": int(self.created_at),
            "in_progress_at": int(self.created_at), "expires_at": int(self.created_at) + 86400,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "expired_at": int(time.time()) if self.status == "expired" else None,
            "failed_at": None, "cancelled_at": None, "cancelling_at": None,
            "finalizing_at": None,
            "request_counts": {"total": total, "completed": total if done else 0,
                               "failed": 0},
            "metadata": self.metadata,
        }


class FakeBatches:
    """The Files and Batch endpoints of one fake provider."""

    def __init__(self, provider: FakeProvider) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self._files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self._batches: dict[str, FakeBatch] = {}
        self._ids = itertools.count(1)
        self.behaviour = BatchBehaviour()
        self._queued: deque[BatchBehaviour] = deque()
        self.unavailable = False  # every batch request answers 503 (the provider is down)
        self.no_listing = False  # GET /v1/batches answers 404 (a provider that cannot list)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self._create_file, methods=["POST"]),
            Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
            Route("/v1/files/{file_id}", self._file, methods=["GET"]),
            Route("/v1/batches", self._create_batch, methods=["POST"]),
            Route("/v1/batches", self._list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self._retrieve, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self._cancel, methods=["POST"]),
        ]

    def create(self, lines: list[dict[str, Any]], metadata: dict[str, str]) -> str:
        """A batch created directly (as if a client's request had reached the provider and
        its answer were lost); returns its id."""
        input_file = self._store("batch", lines)
        batch = FakeBatch(id=f"batch_fake_{next(self._ids)}", input_file_id=input_file,
                          endpoint="/v1/chat/completions", completion_window="24h",
                          metadata=dict(metadata), created_at=time.time(),
                          behaviour=replace(self.behaviour, fail=set(self.behaviour.fail)),
                          custom_ids=[str(line["custom_id"]) for line in lines])
        with self._lock:
            self._batches[batch.id] = batch
        return batch.id

    def queue(self, *behaviours: BatchBehaviour) -> None:
        """The next batches behave so, in order; then `behaviour` again."""
        with self._lock:
            self._queued.extend(behaviours)

    # -- what tests read ----------------------------------------------------------------------

    @property
    def created(self) -> list[FakeBatch]:
        """Every batch created, oldest first."""
        with self._lock:
            return sorted(self._batches.values(), key=lambda b: (b.created_at, b.id))

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._batches.clear()
            self._queued.clear()
        self.behaviour = BatchBehaviour()
        self.unavailable = False
        self.no_listing = False

    # -- files --------------------------------------------------------------------------------

    async def _create_file(self, request: Request) -> Response:
        if self.unavailable:
            return _error(503, "the batch service is unavailable")
        parts = _multipart(await request.body(), request.headers.get("content-type", ""))
        if "file" not in parts:
            return _error(400, "'file' is required")
        name, content = parts["file"]
        purpose = parts.get("purpose", ("", b""))[1].decode()
        file_id = f"file-fake-{next(self._ids)}"
        with self._lock:
            self._files[file_id] = (purpose, content)
        return JSONResponse(_file_json(file_id, purpose, content, name or "input"))

    async def _file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self._lock:
            found = self._files.get(file_id)
        if found is None:
            return _error(404, f"no file {file_id}")
        return JSONResponse(_file_json(file_id, found[0], found[1], file_id))

    async def _file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self._lock:
            found = self._files.get(file_id)
        if found is None:
            return _error(404, f"no file {file_id}")
        return Response(found[1], media_type="application/octet-stream")

    # -- batches ------------------------------------------------------------------------------

    async def _create_batch(self, request: Request) -> Response:
        if self.unavailable:
            return _error(503, "the batch service is unavailable")
        body = json.loads(await request.body())
        input_file_id = str(body.get("input_file_id") or "")
        with self._lock:
            found = self._files.get(input_file_id)
        if found is None:
            return _error(400, f"no input file {input_file_id}")
        lines = [json.loads(line) for line in found[1].decode().splitlines() if line.strip()]
        with self._lock:
            behaviour = self._queued.popleft() if self._queued else self.behaviour
        batch = FakeBatch(
            id=f"batch_fake_{next(self._ids)}", input_file_id=input_file_id,
            endpoint=str(body.get("endpoint")),
            completion_window=str(body.get("completion_window") or "24h"),
            metadata=dict(body.get("metadata") or {}), created_at=time.time(),
            behaviour=replace(behaviour, fail=set(behaviour.fail)),
            custom_ids=[str(line["custom_id"]) for line in lines])
        with self._lock:
            self._batches[batch.id] = batch
        return JSONResponse(batch.as_json())

    async def _list_batches(self, request: Request) -> Response:
        if self.unavailable:
            return _error(503, "the batch service is unavailable")
        if self.no_listing:
            return _error(404, "listing batches is not supported")
        with self._lock:
            batches = sorted(self._batches.values(), key=lambda b: -b.created_at)
        data = [b.as_json() for b in batches]
        return JSONResponse({"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})

    async def _retrieve(self, request: Request) -> Response:
        if self.unavailable:
            return _error(503, "the batch service is unavailable")
        batch_id = request.path_params["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return _error(404, f"no batch {batch_id}")
        batch.retrieved += 1
        if batch.behaviour.retrieve_latency_s:
            await asyncio.sleep(batch.behaviour.retrieve_latency_s)
        if batch.status in ("validating", "in_progress"):
            if time.time() - batch.created_at < batch.behaviour.delay_s:
                batch.status = "in_progress"
            else:
                self._finish(batch)
        return JSONResponse(batch.as_json())

    async def _cancel(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return _error(404, f"no batch {batch_id}")
        if batch.status in ("validating", "in_progress"):
            batch.status = "cancelled"
        return JSONResponse(batch.as_json())

    def _finish(self, batch: FakeBatch) -> None:
        """Answer every line (as the chat endpoint would), then write the result files."""
        from tests.support.fake_provider import _recorded  # the chat endpoint's own parsing

        with self._lock:
            content = self._files[batch.input_file_id][1]
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        answered = lines if batch.behaviour.expire_after is None else \
            lines[:batch.behaviour.expire_after]
        outputs, errors = [], []
        for number, line in enumerate(lines):
            custom_id = str(line["custom_id"])
            if line not in answered:
                errors.append({"id": f"batch_req_{number}", "custom_id": custom_id,
                               "response": None,
                               "error": {"code": "batch_expired",
                                         "message": "This request could not be executed "
                                                    "before the completion window expired."}})
                continue
            if custom_id in batch.behaviour.fail:
                errors.append({"id": f"batch_req_{number}", "custom_id": custom_id,
                               "response": {"status_code": 500,
                                            "request_id": f"req_{number}",
                                            "body": {"error": {"message": "server error",
                                                               "type": "server_error"}}},
                               "error": None})
                continue
            recorded = _recorded(dict(line["body"]))
            answer = self._provider._next_answer(recorded)
            body = self._provider._completion(recorded, answer)
            outputs.append({"id": f"batch_req_{number}", "custom_id": custom_id,
                            "response": {"status_code": 200, "request_id": f"req_{number}",
                                         "body": body},
                            "error": None})
        batch.output_file_id = self._store("batch_output", outputs) if outputs else None
        batch.error_file_id = self._store("batch_output", errors) if errors else None
        batch.status = "expired" if batch.behaviour.expire_after is not None else "completed"

    def _store(self, purpose: str, rows: list[dict[str, Any]]) -> str:
        file_id = f"file-fake-{next(self._ids)}"
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
        with self._lock:
            self._files[file_id] = (purpose, data)
        return file_id


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (file name, bytes). The standard
    library's MIME parser reads it (the app has no multipart dependency of its own)."""
    message = BytesParser(policy=default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True) or b""
            fields[str(name)] = (part.get_filename(), bytes(payload))
    return fields


def _file_json(file_id: str, purpose: str, content: bytes, name: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(content),
            "created_at": int(time.time()), "filename": name, "purpose": purpose,
            "status": "processed", "status_details": None}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": str(status)}}, status_code=status)
