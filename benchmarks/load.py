"""Load: a realistic mixed GraphQL workload against `mmos serve` over a seeded database.

Creates a throwaway database (100k fragments by default, seeded with INSERT … SELECT
generate_series), starts `mmos serve` on it, then, in one run:

1. measures a nested fragments page (`fragments(first: 100) { edges { node { …scalars
   source { id title } } } }`) served by GraphQL against the same rows read with raw asyncpg
   and serialised with json.dumps (target: GraphQL ≤ 8× raw);
2. drives paged and nested queries, search, comparison and mutations from `--concurrency`
   clients for `--duration` seconds and reports throughput and p50/p95/p99 per operation.

Fields absent from the served schema (found by introspection) are left out of the workload.

    .venv/bin/python -m benchmarks.load [--fragments 100000] [--sources 500]
        [--duration 30] [--concurrency 16] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ADMIN_DSN = os.environ.get("MMOS_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_RATIO = 8.0
MODELS = ("rules-fast", "rules-thorough")
SENTENCES = (
    "I rebuilt the old bridge model because I wanted my students to see failure up close.",
    "Every beam told a story about patience and about the people who trusted it.",
    "When it finally held, we cheered like it was a cup final.",
    "I realised that teaching is engineering with people instead of steel.",
    "My father never praised me, so I learned to measure myself against the work.",
    "Because I was afraid of speaking in public, I rehearsed every lecture twice.",
    "I value honesty more than comfort, even when it costs me friendships.",
    "When a plan fails, I write down what I expected and what happened instead.",
    "Music was the only place where I allowed myself to be imprecise.",
    "I changed my mind about ambition after my daughter was born.",
    "My mother taught me to keep promises small so that I could keep them all.",
    "I distrust people who are certain about everything.",
    "Whenever I feel anxious, I go for a long walk by the river.",
    "I think of every mistake as a measurement, not a verdict.",
    "We moved cities four times before I turned twelve, and I learned to make friends fast.",
    "I still keep the notebook where I drew my first bridge.",
    "Eu aprendi a ouvir antes de falar quando trabalhei no hospital.",
    "Minha família sempre discutiu política no jantar de domingo.",
    "Quando erro, prefiro admitir logo e corrigir o rumo.",
    "A música me ensinou disciplina mais do que a escola.",
)
TOPICS = ("bridges", "teaching", "family", "music", "failure", "ambition", "friendship",
          "honesty", "fear", "rivers", "cities", "notebooks")
TAGS = tuple(f"{word}-{n}" for word in ("trait", "theme", "value", "memory", "habit", "belief")
             for n in range(10))
SEARCHES = ("bridge", "teaching people", '"keep promises"', "family OR música", "failure -music",
            "anxious walk", "honesty", "ambition daughter", "aprendi", "notebook bridge")
CATEGORIES = ("biographical", "cognitive", "communicative", "behavioral", "values_beliefs",
              "social", "emotional", "meta_cognitive", "general")
CODES = ("BIO", "COG", "COM", "BEH", "VAL", "SOC", "EMO", "META", "GEN")
FRAGMENT_COLUMNS = {  # GraphQL field → column, for the raw side of the ratio
    "id": "id", "fragmentCode": "fragment_code", "content": "content", "quote": "quote",
    "charStart": "char_start", "charEnd": "char_end", "grounding": "grounding",
    "groundingScore": "grounding_score", "category": "category", "subcategory": "subcategory",
    "fragmentType": "fragment_type", "context": "context", "insight": "insight",
    "relevance": "relevance", "confidence": "confidence", "isComplete": "is_complete",
    "hasCleanBoundaries": "has_clean_boundaries", "verificationStatus": "verification_status",
    "verifiedBy": "verified_by", "verifiedAt": "verified_at", "model": "model_name",
    "chunkIndex": "chunk_index", "createdAt": "created_at",
}
ENUM_COLUMNS = {"grounding", "category", "fragment_type", "verification_status"}
# Orderings of the ratio: the listing's default (POSITION: a sort over every fragment, no index
# covers it) and CREATED_AT (served by ix_fragments_listing), as the SQL sort key the server uses.
ORDERINGS = {"POSITION": "coalesce(f.char_start, -1)", "CREATED_AT": "f.created_at"}


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# --- seeding -------------------------------------------------------------------------------


def seed_statements(sources: int, fragments: int) -> list[str]:
    """Sources, a batch and a run per model and source, fragments spread over the runs, tags,
    relationships, verifications and measured performance: all set-based SQL."""
    sentences, topics = _array(SENTENCES), _array(TOPICS)
    categories, codes = _array(CATEGORIES), _array(CODES)
    return [
        f"""INSERT INTO sources (source_code, title, source_type, quality, extraction_priority,
            status, content, content_sha256, word_count, char_count, language, author,
            created_at, updated_at)
        SELECT format('LOAD_%s', lpad(g::text, 6, '0')),
               format('%s %s #%s', (ARRAY['Interview on', 'Podcast about', 'Essay on',
                      'Letters about'])[1 + g % 4], ({topics})[1 + g % {len(TOPICS)}], g),
               (ARRAY['interview', 'podcast', 'article', 'social_media', 'book'])[1 + g % 5],
               (ARRAY['primary', 'secondary', 'tertiary'])[1 + g % 3],
               (ARRAY['critical', 'very_high', 'high', 'medium', 'low'])[1 + g % 5],
               'processed', c.content, encode(sha256(convert_to(c.content, 'UTF8')), 'hex'),
               array_length(regexp_split_to_array(c.content, '\\s+'), 1), length(c.content),
               CASE WHEN g % 7 = 0 THEN 'pt-BR' ELSE 'en' END, format('Author %s', g % 37),
               now() - make_interval(mins => g), now() - make_interval(mins => g)
        FROM generate_series(1, {sources}) g
        CROSS JOIN LATERAL (
            SELECT format('Source %s. ', g) || string_agg(
                ({sentences})[1 + (g * 7 + i) % {len(SENTENCES)}], ' ') AS content
            FROM generate_series(1, 40) i) c""",
        f"""INSERT INTO processing_batches (group_id, model_name, status, config, spent_usd,
            created_at, started_at, completed_at)
        SELECT md5(s.id::text)::uuid::text, m.name, 'completed',
               jsonb_build_object('prompt_version', 'v1', 'temperature', 0,
                                  'max_output_tokens', 4096),
               0, s.created_at, s.created_at, s.created_at + interval '2 minutes'
        FROM sources s CROSS JOIN unnest({_array(MODELS)}) m(name) ORDER BY s.id, m.name""",
        """INSERT INTO source_processing (batch_id, source_id, model_name, status, attempts,
            chunk_count, chunks_done, input_tokens, output_tokens, cost_usd, llm_calls,
            latency_ms, created_at, started_at, completed_at)
        SELECT b.id, s.id, b.model_name, 'completed', 1, 4, 4, 12000, 3000, 0, 4, 2400,
               b.created_at, b.started_at, b.completed_at
        FROM processing_batches b JOIN sources s ON md5(s.id::text)::uuid::text = b.group_id
        ORDER BY b.id""",
        f"""WITH r AS (SELECT id, batch_id, source_id, model_name, created_at,
                              row_number() OVER (ORDER BY id) AS rn FROM source_processing),
             n AS (SELECT count(*) AS c FROM r)
        INSERT INTO fragments (fragment_code, run_id, batch_id, source_id, model_name,
            chunk_index, ordinal, content, quote, char_start, char_end, grounding,
            grounding_score, category, subcategory, fragment_type, context, insight, relevance,
            confidence, is_complete, has_clean_boundaries, search_config, created_at)
        SELECT format('FRAG_%s_%s', ({codes})[1 + g % 9], lpad(g::text, 7, '0')),
               r.id, r.batch_id, r.source_id, r.model_name,
               ((g - 1) / n.c)::int / 25, ((g - 1) / n.c)::int % 25,
               ({sentences})[1 + g % {len(SENTENCES)}] || ' '
                   || ({sentences})[1 + (g * 3) % {len(SENTENCES)}],
               ({sentences})[1 + g % {len(SENTENCES)}],
               CASE WHEN g % 20 = 0 THEN NULL ELSE ((g - 1) / n.c)::int * 90 END,
               CASE WHEN g % 20 = 0 THEN NULL ELSE ((g - 1) / n.c)::int * 90 + 85 END,
               CASE WHEN g % 20 = 0 THEN 'ungrounded' WHEN g % 10 = 0 THEN 'fuzzy'
                    ELSE 'exact' END,
               CASE WHEN g % 20 = 0 THEN 0 WHEN g % 10 = 0 THEN 91.5 ELSE 100 END,
               ({categories})[1 + g % 9], NULL,
               (ARRAY['direct_quote', 'paraphrase', 'description', 'example', 'pattern',
                      'anecdote', 'analysis', 'synthesis'])[1 + g % 8],
               'Said while talking about ' || ({topics})[1 + g % {len(TOPICS)}],
               'Suggests a stable preference', 1 + g % 10, (g % 100) / 100.0,
               g % 6 <> 0, g % 9 <> 0,
               CASE WHEN r.source_id % 7 = 0 THEN 'portuguese' ELSE 'english' END::regconfig,
               r.created_at + make_interval(secs => (g % 100000) / 1000.0)
        FROM generate_series(1, {fragments}) g
        CROSS JOIN n JOIN r ON r.rn = 1 + (g - 1) % n.c""",
        """UPDATE source_processing p SET fragment_count = c.total, grounded_count = c.grounded
        FROM (SELECT run_id, count(*) AS total,
                     count(*) FILTER (WHERE grounding <> 'ungrounded') AS grounded
              FROM fragments GROUP BY run_id) c WHERE c.run_id = p.id""",
        "UPDATE fragment_code_counters SET last_value = 10000000",
        f"""INSERT INTO tags (name, category)
        SELECT name, split_part(name, '-', 1) FROM unnest({_array(TAGS)}) name""",
        f"""INSERT INTO fragment_tags (fragment_id, tag_id)
        SELECT f.id, t.id FROM fragments f JOIN tags t ON t.id = 1 + f.id % {len(TAGS)}
        WHERE f.id % 3 = 0
        UNION SELECT f.id, t.id FROM fragments f JOIN tags t ON t.id = 1 + (f.id / 7) % 10
        WHERE f.id % 10 = 0 ON CONFLICT DO NOTHING""",
        f"""INSERT INTO fragment_relationships (fragment_id, related_fragment_id,
            relationship_type, confidence, notes, created_by)
        SELECT 1 + (g * 31) % {fragments}, 1 + (g * 31 + 17) % {fragments},
               (ARRAY['supports', 'contradicts', 'elaborates', 'evolves_from', 'related_to',
                      'depends_on', 'conflicts_with'])[1 + g % 7], 0.8, 'seeded', 'load'
        FROM generate_series(1, {max(fragments // 50, 1)}) g ON CONFLICT DO NOTHING""",
        """WITH v AS (UPDATE fragments SET verification_status =
                        CASE WHEN id % 2 = 0 THEN 'verified' ELSE 'rejected' END,
                        verified_by = 'key:reviewer', verified_at = now()
                      WHERE id % 97 = 0 RETURNING id, verification_status)
        INSERT INTO verification_events (fragment_id, decision, previous_status, reviewer)
        SELECT id, verification_status, 'unverified', 'key:reviewer' FROM v""",
        """INSERT INTO model_performance (run_id, source_id, batch_id, model_name, source_type,
            reference_kind, reference_model, quality_score, quality_low, quality_high,
            provisional, grounded_rate, miu_rate, precision, recall, f1, coverage,
            mean_relevance, fragment_count, grounded_fragment_count, cost_usd,
            cost_per_fragment, cost_per_1k_chars, latency_ms)
        SELECT p.id, p.source_id, p.batch_id, p.model_name, s.source_type, 'consensus', NULL,
               q.score, q.score - 0.6, least(q.score + 0.6, 10), false, 0.95, 0.8, 0.7, 0.75,
               0.72, 0.6, 5.5, p.fragment_count, p.grounded_count, 0, 0, 0, p.latency_ms
        FROM source_processing p JOIN sources s ON s.id = p.source_id
        CROSS JOIN LATERAL (SELECT CASE WHEN p.model_name = 'rules-fast' THEN 7.2
                                        ELSE 8.1 END AS score) q""",
        "ANALYZE",
    ]


async def create_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def seed(url: str, dsn: str, sources: int, fragments: int) -> float:
    """Migrate, seed the catalog (as the server does), then the bulk rows; returns seconds."""
    import asyncpg

    from api.container import build_container
    from api.settings import Settings

    started = time.perf_counter()
    settings = Settings(env="development", database_url=url, _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url)
    await runtime.close()
    connection = await asyncpg.connect(dsn)
    try:
        for statement in seed_statements(sources, fragments):
            await connection.execute(statement)
    finally:
        await connection.close()
    return time.perf_counter() - started


# --- the server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, log_path: str) -> tuple[subprocess.Popen[bytes], str]:
    """`mmos serve` on a free loopback port, in development mode, on the seeded database."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "MMOS_ENV": "development",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("REDIS_URL", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(base: str, process: subprocess.Popen[bytes], within: float = 60) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base) as http:
        while time.perf_counter() - started < within:
            if process.poll() is not None:
                raise SystemExit(f"mmos serve exited with {process.returncode}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("mmos serve did not become ready")


# --- the schema as served ------------------------------------------------------------------


class Shape:
    """The served schema (from introspection): which fields exist, and their scalar fields."""

    def __init__(self, introspection: dict[str, Any]) -> None:
        from graphql import build_client_schema

        self.schema = build_client_schema(introspection)  # type: ignore[arg-type]

    def has(self, type_name: str, field_name: str) -> bool:
        type_ = self.schema.get_type(type_name)
        return type_ is not None and field_name in getattr(type_, "fields", {})

    def leaves(self, type_name: str, exclude: tuple[str, ...] = ()) -> str:
        """The scalar and enum fields of a type that take no required argument."""
        from graphql import Undefined, get_named_type, is_leaf_type, is_non_null_type

        def required(argument: Any) -> bool:
            declared = getattr(argument, "default", None) is not None
            return bool(is_non_null_type(argument.type) and not declared
                        and argument.default_value is Undefined)

        type_ = self.schema.get_type(type_name)
        names = [name for name, f in getattr(type_, "fields", {}).items()
                 if is_leaf_type(get_named_type(f.type)) and name not in exclude
                 and not any(required(a) for a in f.args.values())]
        return " ".join(names)


async def introspect(http: httpx.AsyncClient) -> Shape:
    from graphql import get_introspection_query

    response = await http.post("/graphql", json={"query": get_introspection_query()})
    return Shape(response.json()["data"])


# --- the ratio -----------------------------------------------------------------------------


def _gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def nested_page_query(shape: Shape, order: str) -> tuple[str, list[str]]:
    """The nested fragments page in `order` and the Fragment fields it selects (those that
    exist)."""
    fields = [name for name in FRAGMENT_COLUMNS if shape.has("Fragment", name)]
    query = ("query Page($after: String) { fragments(first: 100, after: $after,"
             f" orderBy: {{field: {order}, direction: ASC}}) {{"
             " edges { node { " + " ".join(fields) + " source { id title } } }"
             " pageInfo { endCursor hasNextPage } } }")
    return query, fields


def raw_sql(fields: list[str], sort: str, first_page: bool) -> str:
    """The same rows in the same order, keyset-paged on (sort, id) like the server."""
    columns = ", ".join(f"f.{FRAGMENT_COLUMNS[name]}" for name in fields if name != "id")
    where = "" if first_page else f" WHERE ({sort}, f.id) > ($1, $2)"
    return (f"SELECT f.id, {columns}, {sort} AS sort_key, s.id AS source_id,"
            " s.title AS source_title FROM fragments f JOIN sources s ON s.id = f.source_id"
            f"{where} ORDER BY {sort}, f.id LIMIT 101")


def raw_json(rows: list[Any], fields: list[str]) -> bytes:
    """The rows shaped and serialised like the GraphQL answer (global IDs, ISO dates, enums)."""
    edges = []
    for row in rows[:100]:
        node: dict[str, Any] = {}
        for name in fields:
            column = FRAGMENT_COLUMNS[name]
            value = row[column]
            if name == "id":
                value = _gid("Fragment", value)
            elif column in ENUM_COLUMNS:
                value = value.upper()
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            node[name] = value
        node["source"] = {"id": _gid("Source", row["source_id"]), "title": row["source_title"]}
        edges.append({"node": node})
    last = rows[min(len(rows), 100) - 1] if rows else None
    page_info = {"endCursor": None if last is None else str(last["id"]),
                 "hasNextPage": len(rows) > 100}
    return json.dumps({"data": {"fragments": {"edges": edges, "pageInfo": page_info}}}).encode()


@dataclass
class Ratio:
    """Per-page times of one ordering, GraphQL and raw, and whether the rows matched."""

    order: str
    graphql_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    same_rows: bool = True

    @property
    def value(self) -> float:
        return percentile(self.graphql_ms, .5) / percentile(self.raw_ms, .5)

    def lines(self) -> list[str]:
        graphql_p50, raw_p50 = percentile(self.graphql_ms, .5), percentile(self.raw_ms, .5)
        verdict = "OK" if self.value <= TARGET_RATIO else "OVER TARGET"
        return [
            f"  orderBy {self.order} ({len(self.graphql_ms)} pages each way, one at a time;"
            f" same rows: {self.same_rows})",
            f"    GraphQL over HTTP      p50 {graphql_p50:7.2f} ms   mean"
            f" {sum(self.graphql_ms) / len(self.graphql_ms):7.2f} ms",
            f"    asyncpg + json.dumps   p50 {raw_p50:7.2f} ms   mean"
            f" {sum(self.raw_ms) / len(self.raw_ms):7.2f} ms",
            f"    ratio (p50)            {self.value:.2f}x   target <= {TARGET_RATIO:.0f}x"
            f"   {verdict}",
        ]


async def measure_ratio(http: httpx.AsyncClient, dsn: str, shape: Shape, order: str,
                        pages: int, rounds: int) -> Ratio:
    """Walk the same `pages` pages `rounds` times both ways, one request at a time."""
    import asyncpg

    query, fields = nested_page_query(shape, order)
    ratio = Ratio(order)
    connection = await asyncpg.connect(dsn)
    try:
        first = await connection.prepare(raw_sql(fields, ORDERINGS[order], True))
        following = await connection.prepare(raw_sql(fields, ORDERINGS[order], False))
        for round_ in range(rounds + 1):  # round 0 warms both paths up and checks the rows
            after: str | None = None
            key: tuple[Any, int] | None = None
            for _ in range(pages):
                started = time.perf_counter()
                response = await http.post("/graphql", json={"query": query,
                                                             "variables": {"after": after}})
                graphql_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                rows = await (first.fetch() if key is None else following.fetch(*key))
                raw = raw_json(rows, fields)
                raw_ms = (time.perf_counter() - started) * 1000
                page = response.json()["data"]["fragments"]
                if round_ == 0:
                    served = [edge["node"]["id"] for edge in page["edges"]]
                    read = [edge["node"]["id"] for edge in
                            json.loads(raw)["data"]["fragments"]["edges"]]
                    ratio.same_rows = ratio.same_rows and served == read
                else:
                    ratio.graphql_ms.append(graphql_ms)
                    ratio.raw_ms.append(raw_ms)
                after = page["pageInfo"]["endCursor"]
                last = rows[min(len(rows), 100) - 1]
                key = (last["sort_key"], last["id"])
    finally:
        await connection.close()
    return ratio


# --- the workload --------------------------------------------------------------------------

Request = tuple[str, dict[str, Any], Callable[[dict[str, Any]], None] | None]
Builder = Callable[[dict[str, Any], random.Random], Request]


@dataclass
class Fixtures:
    """Global IDs of rows the workload reads and writes."""

    source_ids: list[str]
    fragment_ids: list[str]


async def load_fixtures(dsn: str) -> Fixtures:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        sources = await connection.fetch("SELECT id FROM sources ORDER BY random() LIMIT 500")
        fragments = await connection.fetch(
            "SELECT id FROM fragments TABLESAMPLE SYSTEM (10) LIMIT 5000")
    finally:
        await connection.close()
    return Fixtures([_gid("Source", r["id"]) for r in sources],
                    [_gid("Fragment", r["id"]) for r in fragments])


class Workload:
    """The operation kinds, their weights and request builders (absent fields skipped)."""

    def __init__(self, shape: Shape, fixtures: Fixtures) -> None:
        self.shape = shape
        self.fixtures = fixtures
        self.kinds: dict[str, tuple[int, Builder]] = {}
        candidates: list[tuple[str, int, str, str, Builder]] = [
            ("sources page", 12, "Query", "sources", self.sources_page),
            ("source nested", 12, "Source", "fragments", self.source_nested),
            ("fragments page nested", 18, "Query", "fragments", self.fragments_page),
            ("fragment node", 10, "Query", "node", self.fragment_node),
            ("search", 14, "Query", "searchFragments", self.search),
            ("comparison", 6, "Query", "comparison", self.comparison),
            ("batches page", 6, "Query", "batches", self.batches_page),
            ("dashboard", 4, "Query", "budget", self.dashboard),
            ("createSource", 4, "Mutation", "createSource", self.create_source),
            ("tagFragments", 7, "Mutation", "tagFragments", self.tag_fragments),
            ("verifyFragment", 7, "Mutation", "verifyFragment", self.verify_fragment),
        ]
        self.skipped: list[str] = []
        for name, weight, type_name, field_name, builder in candidates:
            if shape.has(type_name, field_name):
                self.kinds[name] = (weight, builder)
            else:
                self.skipped.append(f"{name} ({type_name}.{field_name} is absent)")

    def _optional(self, type_name: str, field_name: str, selection: str) -> str:
        return selection if self.shape.has(type_name, field_name) else ""

    def _fragment_links(self) -> str:
        return " ".join(part for part in (
            self._optional("Fragment", "tags", "tags { name }"),
            self._optional("Fragment", "relationships",
                           "relationships { direction relationship { relationshipType "
                           "confidence } otherFragment { id fragmentCode } }"),
            self._optional("Fragment", "verificationHistory",
                           "verificationHistory { decision reviewer createdAt }"),
        ) if part)

    def sources_page(self, state: dict[str, Any], rng: random.Random) -> Request:
        fields = self.shape.leaves("Source", exclude=("content",))
        query = ("query($after: String) { sources(first: 20, after: $after) { totalCount"
                 f" edges {{ cursor node {{ {fields} }} }} pageInfo {{ hasNextPage endCursor }}"
                 " } }")

        def follow(body: dict[str, Any]) -> None:
            info = body["data"]["sources"]["pageInfo"]
            pages = state.get("pages", 0) + 1
            keep = info["hasNextPage"] and pages < 10
            state["after"], state["pages"] = (info["endCursor"], pages) if keep else (None, 0)

        return query, {"after": state.get("after")}, follow

    def source_nested(self, state: dict[str, Any], rng: random.Random) -> Request:
        summary = self._optional("Source", "processingSummary",
                                 "processingSummary { "
                                 + self.shape.leaves("ProcessingSummary") + " }")
        query = ("query($id: ID!) { source(id: $id) { id title sourceType wordCount "
                 f"{summary} fragments(first: 20) {{ totalCount edges {{ node {{ id fragmentCode"
                 " category relevance confidence grounding verificationStatus "
                 f"{self._fragment_links()} }} }} }} }} }}")
        return query, {"id": rng.choice(self.fixtures.source_ids)}, None

    def fragments_page(self, state: dict[str, Any], rng: random.Random) -> Request:
        filter_: dict[str, Any]
        if rng.random() < 0.5:
            filter_ = {"categories": [rng.choice(CATEGORIES).upper()]}
        else:
            filter_ = {"sourceId": rng.choice(self.fixtures.source_ids)}
        query = ("query($filter: FragmentFilter) { fragments(first: 50, filter: $filter,"
                 " orderBy: {field: RELEVANCE, direction: DESC}) { totalCount edges { node { "
                 + self.shape.leaves("Fragment") + " source { id title } batch { id model"
                 f" status }} {self._optional('Fragment', 'tags', 'tags { name }')} }} }}"
                 " pageInfo { hasNextPage endCursor } } }")
        return query, {"filter": filter_}, None

    def fragment_node(self, state: dict[str, Any], rng: random.Random) -> Request:
        query = ("query($id: ID!) { node(id: $id) { id ... on Fragment { content quote category"
                 " source { title sourceType } run { status costUsd } "
                 f"{self._fragment_links()} }} }} }}")
        return query, {"id": rng.choice(self.fixtures.fragment_ids)}, None

    def search(self, state: dict[str, Any], rng: random.Random) -> Request:
        hit = self.shape.leaves("FragmentSearchHit")
        inner = self._optional("FragmentSearchHit", "fragment",
                               "fragment { id fragmentCode category source { id title } }")
        query = ("query($q: String!) { searchFragments(query: $q, first: 20) { totalCount"
                 f" edges {{ node {{ {hit} {inner} }} }} }} }}")
        return query, {"q": rng.choice(SEARCHES)}, None

    def comparison(self, state: dict[str, Any], rng: random.Random) -> Request:
        entries = self._optional("ModelComparison", "entries",
                                 "entries { " + self.shape.leaves("ComparisonEntry") + " }")
        query = ("query($id: ID!) { comparison(sourceId: $id) { "
                 f"{self.shape.leaves('ModelComparison')} {entries} }} }}")
        return query, {"id": rng.choice(self.fixtures.source_ids)}, None

    def batches_page(self, state: dict[str, Any], rng: random.Random) -> Request:
        query = ("{ batches(first: 20) { totalCount edges { node { "
                 + self.shape.leaves("Batch", exclude=("config", "decisions"))
                 + " runs { status fragmentCount costUsd } } } } }")
        return query, {}, None

    def dashboard(self, state: dict[str, Any], rng: random.Random) -> Request:
        queue = self._optional("Query", "queueStatus",
                               "queueStatus { waiting running waitingBudget workersAlive }")
        return f"{{ budget {{ {self.shape.leaves('Budget')} }} {queue} }}", {}, None

    def create_source(self, state: dict[str, Any], rng: random.Random) -> Request:
        code = f"LOAD_NEW_{uuid.uuid4().hex[:12].upper()}"
        content = f"New source {code}. " + " ".join(rng.choices(SENTENCES, k=30))
        query = ("mutation($input: CreateSourceInput!) { createSource(input: $input) {"
                 " __typename ... on CreateSourcePayload { source { id sourceCode } }"
                 " ... on ValidationError { message fieldErrors { field message } } } }")
        return query, {"input": {"sourceCode": code, "title": f"Load {code}",
                                 "sourceType": "INTERVIEW", "content": content}}, None

    def tag_fragments(self, state: dict[str, Any], rng: random.Random) -> Request:
        ids = rng.sample(self.fixtures.fragment_ids, rng.randint(1, 5))
        query = ("mutation($input: TagFragmentsInput!) { tagFragments(input: $input) {"
                 " __typename } }")
        return query, {"input": {"fragmentIds": ids,
                                 "tags": rng.sample(TAGS, rng.randint(1, 2))}}, None

    def verify_fragment(self, state: dict[str, Any], rng: random.Random) -> Request:
        query = ("mutation($input: VerifyFragmentInput!) { verifyFragment(input: $input) {"
                 " __typename } }")
        decision = rng.choice(("VERIFIED", "REJECTED", "NEEDS_REVIEW"))
        return query, {"input": {"fragmentId": rng.choice(self.fixtures.fragment_ids),
                                 "decision": decision, "notes": "load"}}, None


@dataclass
class Stats:
    """Latencies (ms) and failures per operation kind."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, kind: str, ms: float, failure: str | None) -> None:
        self.latencies[kind].append(ms)
        if failure is not None:
            self.failures[kind] += 1
            self.examples.setdefault(kind, failure[:300])


def _failure(response: httpx.Response) -> tuple[dict[str, Any] | None, str | None]:
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    if body.get("errors"):
        return body, json.dumps(body["errors"])
    for value in (body.get("data") or {}).values():
        typename = value.get("__typename", "") if isinstance(value, dict) else ""
        if typename and not typename.endswith("Payload"):
            return body, json.dumps(value)
    return body, None


async def user(http: httpx.AsyncClient, workload: Workload, stats: Stats, deadline: float,
               rng: random.Random) -> None:
    """One client: pick an operation by weight, send it, record, repeat until the deadline."""
    names = list(workload.kinds)
    weights = [workload.kinds[name][0] for name in names]
    state: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        kind = rng.choices(names, weights)[0]
        query, variables, follow = workload.kinds[kind][1](state, rng)
        started = time.perf_counter()
        try:
            response = await http.post("/graphql", json={"query": query, "variables": variables})
            body, failure = _failure(response)
        except httpx.HTTPError as exc:
            body, failure = None, f"{type(exc).__name__}: {exc}"
        stats.record(kind, (time.perf_counter() - started) * 1000, failure)
        if follow is not None and body is not None and failure is None:
            follow(body)


async def run_load(http: httpx.AsyncClient, workload: Workload, concurrency: int,
                   seconds: float, seed_value: int) -> tuple[Stats, float]:
    stats = Stats()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(user(http, workload, stats, deadline,
                                random.Random(seed_value + n)) for n in range(concurrency)))
    return stats, time.perf_counter() - started


# --- report --------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def table(stats: Stats, elapsed: float) -> str:
    lines = [f"{'operation':<24}{'count':>8}{'fail':>6}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
             f"{'p99 ms':>9}"]
    everything: list[float] = []
    for kind in sorted(stats.latencies):
        values = stats.latencies[kind]
        everything += values
        lines.append(f"{kind:<24}{len(values):>8}{stats.failures.get(kind, 0):>6}"
                     f"{len(values) / elapsed:>9.1f}{percentile(values, .5):>9.1f}"
                     f"{percentile(values, .95):>9.1f}{percentile(values, .99):>9.1f}")
    failures = sum(stats.failures.values())
    lines.append(f"{'overall':<24}{len(everything):>8}{failures:>6}"
                 f"{len(everything) / elapsed:>9.1f}{percentile(everything, .5):>9.1f}"
                 f"{percentile(everything, .95):>9.1f}{percentile(everything, .99):>9.1f}")
    for kind, example in sorted(stats.examples.items()):
        lines.append(f"  first failure of {kind}: {example}")
    return "\n".join(lines)


async def drive(base: str, dsn: str, args: argparse.Namespace) -> tuple[str, bool]:
    """Ratios first (quiet server), then the mixed load; returns the report and whether every
    ratio met the target."""
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        shape = await introspect(http)
        ratios = [await measure_ratio(http, dsn, shape, order, pages=10, rounds=args.ratio_rounds)
                  for order in ORDERINGS]
        workload = Workload(shape, await load_fixtures(dsn))
        await run_load(http, workload, args.concurrency, args.warmup, args.seed)
        stats, elapsed = await run_load(http, workload, args.concurrency, args.duration,
                                        args.seed + 1000)
    lines = [
        f"mixed load: {args.concurrency} concurrent clients for {elapsed:.1f} s "
        f"(after {args.warmup:.0f} s warm-up)",
        table(stats, elapsed),
    ]
    if workload.skipped:
        lines.append("skipped (absent from the schema): " + ", ".join(workload.skipped))
    lines += ["", "nested fragments page: fragments(first: 100, orderBy: …) { edges { node {"
                  " …scalars source { id title } } } } against the same rows read raw"]
    for ratio in ratios:
        lines += ratio.lines()
    return "\n".join(lines), all(ratio.value <= TARGET_RATIO for ratio in ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fragments", type=int, default=100_000)
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ratio-rounds", type=int, default=10,
                        help="walks of the same 10 pages for the ratio")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name = f"mmos_load_{uuid.uuid4().hex[:8]}"
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(create_database(name))
    process = None
    log_path = os.path.join(tempfile.gettempdir(), f"{name}-serve.log")
    try:
        seconds = asyncio.run(seed(url, dsn, args.sources, args.fragments))
        print(f"database {name}: {args.sources} sources, {2 * args.sources} batches and runs, "
              f"{args.fragments} fragments seeded in {seconds:.1f} s")
        process, base = start_server(url, log_path)
        ready = asyncio.run(wait_ready(base, process))
        print(f"mmos serve ready in {ready:.1f} s on {base} (log: {log_path})\n")
        report, on_target = asyncio.run(drive(base, dsn, args))
        print(report)
        return 0 if on_target else 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            print(f"kept database {name}")
        else:
            asyncio.run(drop_database(name))


if __name__ == "__main__":
    raise SystemExit(main())
