"""The review page in headless Chromium, against the real app over loopback HTTP.

Every check reads the answer back through the public API: the page is only a client of it.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from typing import Any

from api.ids import to_global
from tests.support.browser import LiveServer, axe_violations
from tests.support.fake_provider import FakeProvider, RecordedRequest, Scripted, echo_responder
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    create_source,
    interview,
    register_fake_model,
    start_one_batch,
    wait_batch,
)
from tests.support.waiting import wait_for

PAGE_WEIGHT_LIMIT = 300 * 1024  # bytes, gzipped, every asset of the page
SPANS = """query($run: ID!, $after: String) { fragments(first: 100, after: $after,
  filter: {runId: $run, grounding: [EXACT, FUZZY]}) { pageInfo { hasNextPage endCursor }
  edges { node { id charStart charEnd } } } }"""
STATUS = """query($id: ID!) { node(id: $id) { ... on Fragment { verificationStatus
  verificationHistory { decision } } } }"""


async def grounded_ids(gql: GraphQLClient, run_id: str) -> set[str]:
    """The run's grounded fragments with a span, through the fragments listing."""
    found: set[str] = set()
    after = None
    while True:
        page = (await gql(SPANS, {"run": run_id, "after": after}))["data"]["fragments"]
        found |= {edge["node"]["id"] for edge in page["edges"]
                  if edge["node"]["charStart"] is not None}
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def open_reader(page: Any, server: LiveServer, source_id: str) -> None:
    await page.goto(f"{server.url}/review#/source/{source_id}")
    await page.wait_for_selector("mark.seg")


async def highlighted_ids(page: Any) -> set[str]:
    """Fragment ids on the highlighted segments."""
    ids: list[str] = await page.eval_on_selector_all(
        "mark.seg", "marks => marks.flatMap(m => m.dataset.frags.split(' '))")
    return set(ids)


async def test_the_page_loads_from_this_origin_under_its_csp_within_the_weight_limit(
        page: Any, server: LiveServer, processed_source: dict[str, Any]) -> None:
    # Given: every response the page receives is recorded
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))

    # When: the sources list and then a source are opened
    answer = await page.goto(f"{server.url}/review")
    await page.get_by_role("link", name="Interview REVIEW").wait_for()
    await page.get_by_role("link", name="Interview REVIEW").click()
    await page.wait_for_selector("mark.seg")

    # Then: the page has its strict CSP and loads nothing from another origin
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert all(r.url.startswith(server.url) for r in responses), [r.url for r in responses]
    # And: its assets (the page, scripts, styles) weigh under the limit gzipped
    assets = [r for r in responses if "/graphql" not in r.url]
    assert {a.url.rsplit("/", 1)[-1] for a in assets} >= {"review", "app.js", "preact.min.umd.js"}
    weight = 0
    for asset in assets:
        weight += len(gzip.compress(await asset.body(), 9))
    assert weight < PAGE_WEIGHT_LIMIT, weight


async def test_toggling_two_models_shows_exactly_their_spans(
        page: Any, server: LiveServer, engine_gql: GraphQLClient,
        processed_source: dict[str, Any]) -> None:
    runs = {e["model"]: e["runId"] for e in processed_source["comparison"]["entries"]}
    expected = {model: await grounded_ids(engine_gql, run) for model, run in runs.items()}
    assert all(expected.values()), expected
    await open_reader(page, server, processed_source["id"])
    fast = page.get_by_role("checkbox", name="rules-fast")
    thorough = page.get_by_role("checkbox", name="rules-thorough")

    # Given: both models are shown at first
    assert await highlighted_ids(page) == expected["rules-fast"] | expected["rules-thorough"]

    # When: both are turned off, nothing is highlighted
    await fast.uncheck()
    await thorough.uncheck()
    assert await page.locator("mark.seg").count() == 0

    # When: one is turned on, exactly its grounded fragments are
    await fast.check()
    assert await highlighted_ids(page) == expected["rules-fast"]
    # And: the other one joins, and segments where both found something name both
    await thorough.check()
    assert await highlighted_ids(page) == expected["rules-fast"] | expected["rules-thorough"]
    await fast.uncheck()
    assert await highlighted_ids(page) == expected["rules-thorough"]
    await fast.check()
    both = page.locator('mark.seg.overlap[data-models="rules-fast rules-thorough"]')
    await both.first.wait_for(state="attached", timeout=10_000)
    assert await both.count() > 0


async def test_a_fragment_is_verified_with_the_keyboard(
        page: Any, server: LiveServer, engine_gql: GraphQLClient,
        processed_source: dict[str, Any]) -> None:
    await open_reader(page, server, processed_source["id"])

    # When: j opens the first fragment, a note is typed, and v verifies it
    await page.keyboard.press("j")
    card = page.locator("#fragment-card")
    await card.get_by_role("button", name="Verify").wait_for()
    fragment_id = await card.get_attribute("data-fragment")
    notes = page.get_by_label("Notes (optional")
    await notes.fill("checked against the recording")
    await notes.press("Escape")  # leaves the text box: the shortcuts work again
    await page.keyboard.press("v")

    # Then: the card shows it at once, and the API has it with its history
    await page.locator("#card-status", has_text="verified").wait_for()

    async def verified() -> dict[str, Any] | None:
        node = (await engine_gql(STATUS, {"id": fragment_id}))["data"]["node"]
        return node if node["verificationStatus"] == "VERIFIED" else None

    node = await wait_for(verified, timeout=15)
    assert [e["decision"] for e in node["verificationHistory"]] == ["VERIFIED"]
    await page.locator(".history li", has_text="checked against the recording").wait_for()

    # And: k then j come back to it, r rejects it
    await page.keyboard.press("j")
    await page.keyboard.press("k")
    assert await card.get_attribute("data-fragment") == fragment_id
    await page.keyboard.press("r")
    await page.locator("#card-status", has_text="rejected").wait_for()


async def test_a_running_batch_is_followed_to_100_percent(
        page: Any, server: LiveServer, engine_gql: GraphQLClient,
        provider: FakeProvider) -> None:
    # Given: a slow model (each chunk answers after 0.4 s) running over a long source
    def slow(request: RecordedRequest) -> Scripted:
        return replace(echo_responder(request), latency=0.4)

    provider.set_default(slow)
    await register_fake_model(engine_gql, provider)
    source_id = await create_source(engine_gql, "LIVE", interview("LIVE", 300))
    batch_id = await start_one_batch(engine_gql, source_id)

    # When: its source is opened while the batch runs
    await page.goto(f"{server.url}/review#/source/{source_id}")
    item = page.locator(f'li[data-batch="{batch_id}"]')
    await item.wait_for()

    # Then: the bar reaches 100 from the subscription, with the cost so far
    await page.wait_for_function(
        """id => { const bar = document.querySelector(`li[data-batch="${id}"] progress`);
                   return bar && bar.value === 100; }""", arg=batch_id, timeout=60_000)
    await item.locator("label", has_text="batch done").wait_for()
    state = await wait_batch(engine_gql, batch_id)
    assert state["status"] == "COMPLETED"
    assert "so far" in await item.inner_text()
    # And: the finished run's spans appear in the reader
    await page.wait_for_selector("mark.seg")


async def test_the_plot_has_one_point_per_run_of_the_comparison(
        page: Any, server: LiveServer, processed_source: dict[str, Any]) -> None:
    await open_reader(page, server, processed_source["id"])
    points = await page.eval_on_selector_all(
        "#cost-quality .point",
        "ps => ps.map(p => [p.dataset.model, p.dataset.run, Number(p.dataset.quality),"
        " Number(p.dataset.cost)])")
    expected = [[e["model"], e["runId"], e["qualityScore"], float(e["costPerFragment"])]
                for e in processed_source["comparison"]["entries"]]
    assert sorted(points) == sorted(expected)

    # When: a point is hovered, its numbers are shown
    await page.locator("#cost-quality .point").last.hover()  # the topmost when they overlap
    tooltip = await page.locator("#plot-tooltip").inner_text()
    assert "quality" in tooltip and "per grounded fragment" in tooltip


async def test_axe_finds_no_serious_or_critical_violation(
        page: Any, server: LiveServer, processed_source: dict[str, Any]) -> None:
    await page.goto(f"{server.url}/review")
    await page.get_by_role("link", name="Interview REVIEW").wait_for()
    assert await axe_violations(page) == []

    await open_reader(page, server, processed_source["id"])
    await page.keyboard.press("j")
    await page.locator("#fragment-card blockquote").wait_for()
    assert await axe_violations(page) == []


async def test_an_unknown_source_id_says_so(page: Any, server: LiveServer) -> None:
    await page.goto(f"{server.url}/review#/source/{to_global('Source', 987654321)}")
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "No source has the id" in await alert.inner_text()
    assert await page.get_by_role("heading", name="Source not found").is_visible()


async def test_a_revoked_key_is_refused_with_a_message(
        page: Any, server: LiveServer, processing: Any) -> None:
    from domain.services.keys import create_key, revoke_key

    key = await create_key(processing.ports, "reviewer", "editor")
    # Given: the key is entered once in the page
    await page.goto(f"{server.url}/review")
    await page.get_by_role("button", name="Use an API key").click()
    await page.locator("#api-key").fill(key.secret)
    await page.get_by_role("button", name="Use this key").click()
    await page.get_by_text("Key reviewer (editor)").wait_for()

    # When: it is revoked and the page reloads (the key stays in sessionStorage)
    assert await revoke_key(processing.ports, key.secret) == 1
    await page.reload()

    # Then: the page says why and offers to enter another key
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "not valid or has been revoked" in await alert.inner_text()
    assert await page.locator("#api-key").is_visible()


async def test_a_viewer_key_reads_but_cannot_decide(
        page: Any, server: LiveServer, processing: Any,
        processed_source: dict[str, Any]) -> None:
    from domain.services.keys import create_key

    key = await create_key(processing.ports, "reader", "viewer")
    await page.goto(f"{server.url}/review")
    await page.evaluate("token => sessionStorage.setItem('mmos.apiKey', token)", key.secret)
    await page.goto(f"{server.url}/review#/source/{processed_source['id']}")
    await page.reload()  # a new page load reads the key from sessionStorage
    await page.wait_for_selector("mark.seg")
    await page.get_by_text("Key reader (viewer)").wait_for()

    await page.keyboard.press("j")
    card = page.locator("#fragment-card")
    await card.locator("blockquote").wait_for()
    for name in ("Verify", "Reject", "Needs review"):
        assert await card.get_by_role("button", name=name).is_disabled()
    await page.keyboard.press("v")  # the shortcut is refused as well
    assert await page.locator("#card-status").inner_text() == "unverified"


async def test_losing_the_server_mid_session_says_so(
        page: Any, server: LiveServer, processed_source: dict[str, Any]) -> None:
    await open_reader(page, server, processed_source["id"])
    await page.keyboard.press("j")
    await page.locator("#fragment-card blockquote").wait_for()

    # When: the server goes away and a decision is made
    await server.stop()
    await page.keyboard.press("v")

    # Then: a message says so, the text stays on screen, the decision is put back
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "Cannot reach the MMOS server" in await alert.inner_text()
    assert await page.locator("mark.seg").count() > 0
    await page.locator("#card-status", has_text="unverified").wait_for()


TRANSCRIPT = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } } } }"""


async def test_a_transcript_fragment_says_who_spoke_and_when(
        page: Any, server: LiveServer, engine_gql: GraphQLClient) -> None:
    from api.demo_data import load_transcript
    from tests.support.processing import start

    sample = load_transcript()
    body = await engine_gql(TRANSCRIPT, {"input": {
        "sourceCode": "REVIEW_VTT", "title": sample["title"], "sourceType": "PODCAST",
        "content": sample["content"], "contentFormat": "VTT", "subject": sample["subject"]}})
    source_id = body["data"]["createSource"]["source"]["id"]
    payload = await start(engine_gql, source_id, ["rules-thorough"])
    await wait_batch(engine_gql, payload["batches"][0]["id"])
    await open_reader(page, server, source_id)
    # When: the first fragment is opened
    await page.keyboard.press("j")
    # Then: the card says who spoke it and when, from the cues its span covers
    where = page.locator("#card-where")
    await where.wait_for()
    text = await where.inner_text()
    assert text.startswith("Margaret Lindqvist, 00:00:"), text
