"""Provider batch APIs through LiteLLM's file and batch functions (OpenAI's batch format):
upload a JSONL of chat requests, create the batch, find it again by its idempotency key,
retrieve its state, read its result files. One method is one provider request; failures map to
the domain's transient and deterministic errors like chat calls do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from domain.batching import (
    COMPLETION_WINDOW,
    BatchLine,
    BatchState,
    batch_provider,
    chunk_of,
    custom_id,
    served_name,
)
from domain.llm import DeterministicModelError, ModelRequest, ModelSpec, TransientModelError
from workers.gateway import LOCAL_API_KEY, LiteLLMClient, map_error, own_key_of
from workers.litellm_loader import load_litellm

log = logging.getLogger("mmos.batch")

ENDPOINT = "/v1/chat/completions"
METADATA_KEY = "mmos_submission"


class BatchClient:
    """Submits, finds, polls and reads provider batches for one worker process."""

    def __init__(self, chat: LiteLLMClient) -> None:
        self._chat = chat  # request bodies are built exactly as the interactive calls' are

    def _credentials(self, spec: ModelSpec) -> dict[str, Any]:
        provider = batch_provider(spec.litellm_model)
        if provider is None:
            raise DeterministicModelError(f"{spec.name}: {spec.litellm_model} has no batch API "
                                          "MMOS can use")
        found: dict[str, Any] = {"custom_llm_provider": provider}
        key = own_key_of(spec)
        if spec.api_base:
            found["api_base"] = spec.api_base
            found["api_key"] = key or LOCAL_API_KEY
        elif key is not None:
            found["api_key"] = key
        return found

    def line(self, chunk_index: int, request: ModelRequest) -> dict[str, Any]:
        """One chunk's request as a batch line: the same body an interactive call sends."""
        body = self._chat.batch_body(request)
        body["model"] = served_name(request.model.litellm_model)
        return {"custom_id": custom_id(chunk_index), "method": "POST", "url": ENDPOINT,
                "body": body}

    async def submit(self, spec: ModelSpec, lines: Sequence[dict[str, Any]],
                     key: str) -> tuple[str, str]:
        """Upload the lines and create the batch; returns (input file id, batch id)."""
        litellm = load_litellm()
        credentials = self._credentials(spec)
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        try:
            uploaded = await litellm.acreate_file(
                file=(f"{key}.jsonl", data, "application/jsonl"), purpose="batch",
                **credentials)
            created = await litellm.acreate_batch(
                completion_window=COMPLETION_WINDOW, endpoint=ENDPOINT,
                input_file_id=uploaded.id, metadata={METADATA_KEY: key}, **credentials)
        except Exception as exc:
            raise map_error(exc, spec.name, secrets=(str(credentials.get("api_key") or ""),)) \
                from None
        return str(uploaded.id), str(created.id)

    async def find(self, spec: ModelSpec, key: str) -> tuple[str, str] | None:
        """A batch the provider already holds for this submission (created before a crash
        let us record it): (input file id, batch id), or None."""
        litellm = load_litellm()
        credentials = self._credentials(spec)
        try:
            listed = await litellm.alist_batches(limit=100, **credentials)
        except Exception as exc:
            error = map_error(exc, spec.name, secrets=(str(credentials.get("api_key") or ""),))
            if isinstance(error, TransientModelError):
                raise error from None
            # A provider that cannot list its batches: nothing to adopt, send it (a crash
            # between sending and recording could then submit twice; the log says so).
            log.warning("%s: the provider cannot list batches (%s); submitting without "
                        "looking for an earlier submission", spec.name, error.message)
            return None
        for batch in getattr(listed, "data", None) or []:
            metadata = getattr(batch, "metadata", None) or {}
            if metadata.get(METADATA_KEY) == key:
                return str(batch.input_file_id), str(batch.id)
        return None

    async def state(self, spec: ModelSpec, batch_id: str) -> BatchState:
        litellm = load_litellm()
        credentials = self._credentials(spec)
        try:
            found = await litellm.aretrieve_batch(batch_id=batch_id, **credentials)
        except Exception as exc:
            raise map_error(exc, spec.name, secrets=(str(credentials.get("api_key") or ""),)) \
                from None
        return BatchState(str(found.status), getattr(found, "output_file_id", None),
                          getattr(found, "error_file_id", None))

    async def cancel(self, spec: ModelSpec, batch_id: str) -> str:
        """Ask the provider to stop a batch; returns its state after the request."""
        litellm = load_litellm()
        credentials = self._credentials(spec)
        try:
            found = await litellm.acancel_batch(batch_id=batch_id, **credentials)
        except Exception as exc:
            raise map_error(exc, spec.name, secrets=(str(credentials.get("api_key") or ""),)) \
                from None
        return str(found.status)

    async def lines(self, spec: ModelSpec, file_id: str) -> list[BatchLine]:
        """The result lines of an output or error file (lines for chunks MMOS did not submit
        are ignored)."""
        litellm = load_litellm()
        credentials = self._credentials(spec)
        try:
            content = await litellm.afile_content(file_id=file_id, **credentials)
        except Exception as exc:
            raise map_error(exc, spec.name, secrets=(str(credentials.get("api_key") or ""),)) \
                from None
        raw = getattr(content, "content", content)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return [line for line in map(_line, text.splitlines()) if line is not None]


def _line(text: str) -> BatchLine | None:
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except ValueError:
        return None
    index = chunk_of(str(row.get("custom_id") or ""))
    if index is None:
        return None
    response = row.get("response") or {}
    error = row.get("error")
    body = response.get("body") if isinstance(response, dict) else None
    status = int(response.get("status_code") or 0) if isinstance(response, dict) else 0
    message = None
    if error:
        message = str(error.get("message") or error.get("code") or error) \
            if isinstance(error, dict) else str(error)
    elif status != 200:
        detail = (body or {}).get("error") if isinstance(body, dict) else None
        message = f"status {status}: " + (str(detail.get("message")) if isinstance(detail, dict)
                                          else "no answer")
    return BatchLine(index, status, body if isinstance(body, dict) else None, message)


def batch_client_for(client: Any) -> BatchClient | None:
    """The batch client of a worker whose chat client is the LiteLLM gateway (test clients
    that are not have none: a BATCH-mode run then fails with a clear message)."""
    return BatchClient(client) if isinstance(client, LiteLLMClient) else None
