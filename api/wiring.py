"""Processing wiring of the composition root: broker, dispatcher, in-process workers."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

from api.bootstrap import Runtime, on_startup, start_runtime
from api.settings import Settings

log = logging.getLogger("mmos.wiring")


@on_startup
async def install_event_bus(runtime: Runtime) -> None:
    """Progress events: Redis Streams with REDIS_URL, else the in-process broadcaster."""
    if "events" not in runtime.services:
        from workers.events import make_event_bus

        runtime.services["events"] = make_event_bus(runtime)


def model_client() -> Any:
    """The production model client (LiteLLM is imported on the first call, not here)."""
    from workers.gateway import LiteLLMClient

    return LiteLLMClient()


def warm_up_model_client() -> None:
    """Load LiteLLM and its tokenizer (seconds of CPU) before the first job needs them: left
    to the first job, the import freezes the actors' event loop and its lease renewals."""
    from domain.llm import ModelSpec

    model_client().count_tokens(ModelSpec(name="warm-up", litellm_model="gpt-4o-mini"),
                                "warm-up")
    # What the imports built (LiteLLM alone is about a million objects) lives as long as the
    # process: moved out of the collector's reach, full collections stop walking it, which
    # otherwise stalls the event loop for a quarter of a second every few hundred chunks.
    gc.freeze()


def worker_pool_size(settings: Settings) -> int:
    """Connections a worker host keeps open. A chunk in flight holds at most two at once (a
    call's cost settlement runs while the answer is parsed, and a repair call may reserve
    meanwhile), plus lease renewals, the sweeper and run bookkeeping. A pool smaller than
    that opens and closes connections all the time under load, and every new connection
    pays for a handshake and for preparing its statements."""
    return 2 * settings.llm_concurrency + 4


def make_host(settings: Settings, database_url: str, *, sweep: bool = True,
              client_factory: Any = None) -> Any:
    """A worker host whose runtime is created on the actors' loop (one engine per loop)."""
    from workers.host import WorkerHost

    async def runtime_factory() -> Runtime:
        return await start_runtime(settings, database_url=database_url, migrate=False,
                                   pool_size=worker_pool_size(settings))

    return WorkerHost(runtime_factory, client_factory or model_client, sweep=sweep)


class InProcessWorker:
    """Dramatiq's worker threads inside this process (embedded default, no Redis)."""

    def __init__(self, broker: Any, host: Any, threads: int) -> None:
        import dramatiq

        from workers.host import HostLifecycle

        broker.add_middleware(HostLifecycle(host))
        self.host = host
        self.worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=200)

    def start(self) -> None:
        """Start the threads, then the host (runtime, sweeper, heartbeat) on the actors' loop."""
        from dramatiq.asyncio import get_event_loop_thread

        self.worker.start()
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        loop_thread.run_coroutine(self.host.start())

    def stop(self) -> None:
        self.worker.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.worker.stop)


async def attach_processing(runtime: Runtime, database_url: str, *,
                            in_process_worker: bool | None = None,
                            client_factory: Any = None) -> None:
    """Give the runtime a dispatcher; run workers in process when there is no Redis."""
    from workers.broker import setup_broker
    from workers.dispatch import Dispatcher
    from workers.host import install_host

    settings = runtime.settings
    broker = setup_broker(settings.redis_url)
    runtime.services["dispatcher"] = Dispatcher(runtime)
    if in_process_worker is None:
        in_process_worker = not settings.redis_url
    if in_process_worker:
        host = install_host(make_host(settings, database_url, client_factory=client_factory))
        worker = InProcessWorker(broker, host, settings.worker_threads)
        # In a background thread: the server answers at once, the workers get a warm client.
        threading.Thread(target=warm_up_model_client, name="mmos-warm-up", daemon=True).start()
        worker.start()
        runtime.services["worker"] = worker
        log.info("processing in process with %d worker threads", settings.worker_threads)
