"""The `mmos` command: serve, worker, db upgrade, keys, import-reference, export-schema,
demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from api.settings import Settings, get_settings

log = logging.getLogger("mmos.cli")


def _database_url(settings: Settings) -> str:
    from api.container import resolve_database_url
    from db.embedded import EmbeddedUnavailable

    try:
        return resolve_database_url(settings)
    except EmbeddedUnavailable as exc:
        print(f"mmos: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the API server (embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn

    from api.app import create_app
    from api.logging import configure_logging

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    configure_logging(settings.log_level, settings.log_format)
    url = _database_url(settings)
    # Access rules depend on the address actually bound (keys beyond loopback).
    settings = settings.model_copy(update={"host": host, "port": port})
    app = create_app(settings, database_url=url)
    if settings.metrics_port:
        _serve_api_metrics(settings.metrics_port, host, url)
    log.info("serving GraphQL on http://%s:%s/graphql", host, port)
    import signal

    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally instead so that
    # the embedded PostgreSQL is stopped by its exit hook.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # ws_max_size: a WebSocket frame over the request limit is refused (1009) from its header,
    # before it is buffered (api/subscriptions.py bounds frames again on any server).
    uvicorn.run(app, host=host, port=port, log_config=None, ws="websockets",
                ws_max_size=settings.max_request_bytes,
                proxy_headers=True, timeout_graceful_shutdown=10)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply migrations to the configured database."""
    from db.migrate import upgrade_sync

    settings = get_settings()
    upgrade_sync(_database_url(settings), args.revision)
    print(f"database upgraded to {args.revision}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    """Print the GraphQL SDL (sorted), the content of schema.graphql."""
    from strawberry.printer import print_schema

    from api.schema import schema

    # Exactly the printed SDL (no trailing newline): `mmos export-schema > schema.graphql`
    # then equals what any tool printing the schema produces.
    sys.stdout.write(print_schema(schema))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker process on the Redis broker until SIGTERM or SIGINT."""
    import signal
    import threading

    from api.container import InProcessWorker, warm_up_model_client, worker_host
    from api.logging import configure_logging
    from workers.broker import setup_broker

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    database_url = settings.database_url
    if not settings.redis_url:
        print("mmos worker needs REDIS_URL (and DATABASE_URL); without Redis, `mmos serve` "
              "processes jobs in its own process.", file=sys.stderr)
        return 2
    if not database_url:
        print("mmos worker needs DATABASE_URL: workers share the server's PostgreSQL.",
              file=sys.stderr)
        return 2
    if args.threads:
        settings = settings.model_copy(update={"worker_threads": args.threads})
    # Load LiteLLM and its tokenizer before consuming: seconds of CPU that, left to the first
    # job, freeze the actors' shared event loop and with it this process's lease renewals.
    warm_up_model_client()
    broker = setup_broker(settings.redis_url)
    host = worker_host(settings, database_url, broker=broker)
    worker = InProcessWorker(broker, host, settings.worker_threads,
                             idle_poll_seconds=settings.worker_idle_poll_seconds)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    _serve_worker_metrics(settings)
    worker.start()
    log.info("worker %s consuming with %d threads", host.worker_id, settings.worker_threads)
    stop.wait()
    log.info("worker %s stopping", host.worker_id)
    worker.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the sample interviews, run the offline models with a progress bar, summarise."""
    from rich.console import Console

    from api.demo import run_demo
    from api.logging import configure_logging

    settings = get_settings()
    configure_logging("WARNING", settings.log_format)
    return asyncio.run(run_demo(settings, Console()))


def _serve_api_metrics(port: int, host: str, database_url: str) -> None:
    """MMOS_METRICS_PORT: a keyless Prometheus listener on the bound address, for a scraper
    on a private network (compose publishes 8000 only); /metrics keeps its access rules."""
    from api.metrics import serve_internal_metrics

    try:
        serve_internal_metrics(port, host, database_url)
    except OSError as exc:
        print(f"mmos: cannot serve metrics on {host}:{port} (MMOS_METRICS_PORT): {exc}",
              file=sys.stderr)
        raise SystemExit(2) from None
    log.info("Prometheus metrics (no key) on http://%s:%s/metrics", host, port)


def _serve_worker_metrics(settings: Settings) -> None:
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)


def cmd_keys(args: argparse.Namespace) -> int:
    """Create, revoke and list API keys (secrets are shown once, stored as hashes)."""
    settings = get_settings()
    url = _database_url(settings)
    return asyncio.run(_keys(settings, url, args))


async def _keys(settings: Settings, url: str, args: argparse.Namespace) -> int:
    from api.container import cli_container
    from domain.errors import DomainError
    from domain.services import keys

    container = await cli_container(settings, url)
    try:
        if args.keys_command == "create":
            issued = await keys.create_key(container.ports, args.name, args.role)
            print(f"created key {issued.id} {issued.name!r} with role {issued.role}")
            print(f"secret (shown once, keep it safe): {issued.secret}")
        elif args.keys_command == "revoke":
            count = await keys.revoke_key(container.ports, args.key)
            if not count:
                # Never echo what may be a pasted secret.
                print("no active key matches that id, prefix, name or secret", file=sys.stderr)
                return 1
            print(f"revoked {count} key(s)")
        else:
            for key in await keys.list_keys(container.ports):
                state = "revoked" if key.revoked_at else "active"
                print(f"{key.id}\t{key.prefix}\t{key.role}\t{state}\t{key.name}")
    except DomainError as exc:
        print(f"mmos keys: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await container.close()
    return 0


REFERENCE_EXTENSIONS = {".yaml": "mmos_yaml", ".yml": "mmos_yaml", ".md": "mmos_yaml",
                        ".markdown": "mmos_yaml", ".jsonl": "jsonl"}


def cmd_import_reference(args: argparse.Namespace) -> int:
    """Import files of reference fragments (MMOS YAML or JSONL) for one source."""
    settings = get_settings()
    url = _database_url(settings)
    return asyncio.run(_import_reference(settings, url, args))


def _default_reviewer() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _import_reference(settings: Settings, url: str, args: argparse.Namespace) -> int:
    from pathlib import Path

    from api.container import cli_container
    from domain.errors import DomainError, InvalidInput
    from domain.services import reference, sources

    container = await cli_container(settings, url)
    failed = False
    try:
        try:
            source = await sources.source_by_code(container.ports, args.source_code)
        except DomainError as exc:
            print(f"mmos import-reference: {exc.message}", file=sys.stderr)
            return 2
        for name in args.files:
            path = Path(name)
            fmt = args.format or REFERENCE_EXTENSIONS.get(path.suffix.lower())
            try:
                if fmt is None:
                    raise InvalidInput.single(("format",), "cannot be told from the file "
                                                           "name; give --format")
                data = (await asyncio.to_thread(path.read_bytes)).decode("utf-8-sig")
                result = await reference.import_reference_fragments(
                    container.ports, source.id, fmt, data,
                    args.reviewer or _default_reviewer(), path.name, prefix=())
            except (OSError, UnicodeDecodeError) as exc:
                print(f"{name}: cannot be read: {exc}", file=sys.stderr)
                failed = True
                continue
            except DomainError as exc:
                issues = getattr(exc, "issues", None) or []
                print(f"{name}: refused, nothing written: {exc.message if not issues else ''}",
                      file=sys.stderr)
                for issue in issues:
                    print(f"  {'.'.join(issue.path)}: {issue.message}", file=sys.stderr)
                failed = True
                continue
            _print_import(name, result)
    finally:
        await container.close()
    return 1 if failed else 0


def _print_import(name: str, result: object) -> None:
    from domain.services.reference import ImportResult

    assert isinstance(result, ImportResult)
    print(f"{name}: {len(result.grounded)} grounded, {len(result.ungrounded)} ungrounded; "
          f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged")
    for item in result.ungrounded:
        where = (f"closest {item.closest_start}-{item.closest_end} (score {item.score:.0f}): "
                 f"{(item.closest_text or '')[:80]!r}" if item.closest_start is not None
                 else "nothing close")
        print(f"  ungrounded {item.external_id} (line {item.line}): {where}")


def cmd_import(args: argparse.Namespace) -> int:
    """Store sources read from files (transcripts, PDFs, web pages, documents, books)."""
    from api.file_import import run_import

    settings = get_settings()
    url = _database_url(settings)
    return asyncio.run(run_import(settings, url, args))


def cmd_estimate(args: argparse.Namespace) -> int:
    """Forecast the cost and time of processing sources with models; nothing is queued."""
    from api.estimate import run_estimate

    settings = get_settings()
    url = _database_url(settings)
    return asyncio.run(run_estimate(settings, url, args.source_codes, args.models,
                                    args.strategy, args.mode))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the GraphQL server")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.set_defaults(func=cmd_serve)

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)

    worker = commands.add_parser("worker", help="run a worker process (needs REDIS_URL)")
    worker.add_argument("--threads", type=int, default=None, help="worker threads")
    worker.set_defaults(func=cmd_worker)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--role", required=True, choices=["viewer", "editor", "operator"])
    create.add_argument("--name", default="key", help="a label for the key")
    revoke = key_commands.add_parser(
        "revoke", help="revoke a key by id, prefix, name or its whole secret")
    revoke.add_argument("key")
    key_commands.add_parser("list", help="list keys (never their secrets)")
    keys.set_defaults(func=cmd_keys)

    from domain import model as m
    from domain.documents import ContentFormat

    files = commands.add_parser(
        "import", help="store sources read from files: VTT/SRT transcripts, PDF, HTML, DOCX, "
                       "EPUB, Markdown, text")
    files.add_argument("files", metavar="FILE", nargs="+")
    files.add_argument("--type", choices=[t.value for t in m.SourceType], default=None,
                       help="source type (default: from the format, e.g. book for EPUB)")
    files.add_argument("--quality", choices=[q.value for q in m.SourceQuality], default=None)
    files.add_argument("--priority", choices=[p.value for p in m.ExtractionPriority],
                       default=None)
    files.add_argument("--language", default=None,
                       help="BCP 47 tag (default: what the file says, else en)")
    files.add_argument("--subject", default=None,
                       help="the person the clone is about, as the speaker labels name them")
    files.add_argument("--alias", action="append", default=None,
                       help="another name of the subject (repeatable)")
    files.add_argument("--format", choices=[f.value.lower() for f in ContentFormat],
                       default=None, help="default: detected from the bytes and the name")
    files.set_defaults(func=cmd_import)

    imports = commands.add_parser(
        "import-reference", help="import reference fragments (MMOS YAML, Markdown or JSONL)")
    imports.add_argument("source_code", metavar="SOURCE_CODE")
    imports.add_argument("files", metavar="FILE", nargs="+")
    imports.add_argument("--reviewer", default=None,
                         help="who vouches for the fragments (default: cli:<login name>)")
    imports.add_argument("--format", choices=["mmos_yaml", "jsonl"], default=None,
                         help="default: from the extension (.yaml/.yml/.md, .jsonl)")
    imports.set_defaults(func=cmd_import_reference)

    estimate = commands.add_parser(
        "estimate", help="forecast tokens, cost and time of processing sources with models")
    estimate.add_argument("source_codes", metavar="SOURCE_CODE", nargs="+")
    estimate.add_argument("--models", required=True, help="comma-separated catalog names")
    estimate.add_argument("--strategy", choices=["progressive", "aggressive", "conservative"],
                          default=None)
    estimate.add_argument("--mode", choices=["interactive", "batch"], default="interactive")
    estimate.set_defaults(func=cmd_estimate)

    demo = commands.add_parser("demo", help="compare the offline models on sample interviews")
    demo.set_defaults(func=cmd_demo)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(func=cmd_export_schema)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
