// The review page: sources, the reader with every model's spans, the fragment card,
// comparison, the cost–quality plot and live progress. Preact + htm, no build step.
import { ApiError, gql, keyStore } from "./api.js";
import { CostQualityPlot, ComparisonTable } from "./charts.js";
import { Progress } from "./progress.js";
import { segmentsOf } from "./spans.js";
import { html, label, PALETTE, render, TINTS, useCallback, useEffect, useMemo, useRef, useState, whereText } from "./ui.js";

const ME = `{ me { name role canReview keyless } }`;
const SOURCES = `query Sources($filter: SourceFilter, $after: String) {
  sources(first: 50, after: $after, filter: $filter, orderBy: {field: CREATED_AT, direction: DESC}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id sourceCode title sourceType language status wordCount
      runsPerModel { model runs completedRuns activeRuns } } } } }`;
const READER = `query Reader($id: ID!) { source(id: $id) {
  id sourceCode title sourceType language status content charCount
  comparison { pendingRuns reference { kind model runId }
    entries { model runId batchId qualityScore qualityLow qualityHigh provisional isReference
      fragmentCount groundedFragmentCount costUsd costPerFragment latencyMs
      vsReference { qualityDelta low high qualityDeltaPct significant verdict chunks chunksNeeded summary } } }
  sweetSpot { model qualified reason paretoFrontier { model quality costPerFragment } } } }`;
const SPANS = `query Spans($id: ID!, $runs: [ID!]) { source(id: $id) {
  fragmentSpans(runIds: $runs) { fragmentId runId model charStart charEnd grounding verificationStatus category } } }`;
const FRAGMENT = `query Fragment($id: ID!) { node(id: $id) { ... on Fragment {
  id fragmentCode model quote content category fragmentType insight grounding groundingScore
  verificationStatus verifiedBy charStart charEnd tags { name } mixesSpeakers
  location { page pages timeStartMs timeEndMs speaker chapter }
  verificationHistory { decision previousStatus reviewer notes createdAt } } } }`;
const VERIFY = `mutation Verify($input: VerifyFragmentInput!) { verifyFragment(input: $input) {
  __typename ... on VerifyFragmentPayload { fragment { id verificationStatus } }
  ... on ValidationError { message } ... on NotFound { message } ... on Conflict { message } } }`;

const DECISIONS = [
  { key: "v", decision: "VERIFIED", label: "Verify" },
  { key: "r", decision: "REJECTED", label: "Reject" },
  { key: "n", decision: "NEEDS_REVIEW", label: "Needs review" },
];
const STATUS_TEXT = { UNVERIFIED: "unverified", VERIFIED: "verified", REJECTED: "rejected", NEEDS_REVIEW: "needs review" };

function useRoute() {
  const read = () => {
    const match = location.hash.match(/^#\/source\/([^/?#]+)/);
    return match ? { view: "reader", id: decodeURIComponent(match[1]) } : { view: "sources" };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onHash = () => setRoute(read());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  return route;
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState(null);
  const [problem, setProblem] = useState(null); // {kind, message}: shown above every view
  const [askKey, setAskKey] = useState(false);
  const report = useCallback((err) => {
    if (err instanceof ApiError && err.kind === "auth") setAskKey(true);
    setProblem(err ? { kind: err.kind || "graphql", message: err.message } : null);
  }, []);
  const loadMe = useCallback(() => {
    gql(ME).then((data) => { setMe(data.me); setProblem(null); }).catch((err) => { setMe(null); report(err); });
  }, [report]);
  useEffect(loadMe, []);
  const heading = useRef(null);
  useEffect(() => heading.current?.focus(), [route.view, route.id]);

  return html`
    <header class="top">
      <a class="brand" href="#/">MMOS review</a>
      <${KeyStatus} me=${me} onKey=${() => setAskKey(true)} onForget=${() => { keyStore.set(""); loadMe(); }} />
    </header>
    ${problem && html`<div class="problem" role="alert">
      <strong>${problem.kind === "network" ? "Server unreachable: " : problem.kind === "auth" ? "Access refused: " : "Error: "}</strong>
      ${problem.message}
      <button type="button" onClick=${() => { setProblem(null); loadMe(); }}>Retry</button></div>`}
    ${askKey && html`<${KeyForm} onDone=${() => { setAskKey(false); loadMe(); }} onCancel=${() => setAskKey(false)} />`}
    <main id="main">
      ${route.view === "reader"
        ? html`<${Reader} id=${route.id} me=${me} report=${report} heading=${heading} />`
        : html`<${Sources} report=${report} heading=${heading} ready=${me !== null} />`}
    </main>`;
}

function KeyStatus({ me, onKey, onForget }) {
  if (!me) return html`<div class="who"><button type="button" onClick=${onKey}>Enter an API key</button></div>`;
  const who = me.keyless ? "Local developer, no key needed" : `Key ${me.name.replace(/^key:/, "")} (${me.role})`;
  return html`<div class="who">
    <span class="who-name">${who}</span>
    ${!me.canReview && html` <span class="badge" id="read-only">read-only</span>`}
    ${me.keyless
      ? html` <button type="button" onClick=${onKey}>Use an API key</button>`
      : html` <button type="button" onClick=${onForget}>Forget key</button>`}
  </div>`;
}

function KeyForm({ onDone, onCancel }) {
  const [value, setValue] = useState("");
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);
  const submit = (event) => { event.preventDefault(); keyStore.set(value.trim()); onDone(); };
  return html`<form class="key-form" onSubmit=${submit} aria-label="Enter an API key">
    <label for="api-key">API key (kept in this tab only, in sessionStorage)</label>
    <input id="api-key" type="password" autocomplete="off" value=${value} ref=${input}
      onInput=${(e) => setValue(e.target.value)} />
    <button type="submit">Use this key</button>
    <button type="button" onClick=${onCancel}>Cancel</button></form>`;
}

function Sources({ report, heading, ready }) {
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState("");
  const [page, setPage] = useState(null);
  useEffect(() => {
    if (!ready) return undefined;
    const filter = {};
    if (search.trim()) filter.titleContains = search.trim();
    if (status) filter.statuses = [status];
    const timer = setTimeout(() => gql(SOURCES, { filter }).then((d) => setPage(d.sources)).catch(report), 150);
    return () => clearTimeout(timer);
  }, [search, status, ready]);
  return html`
    <h1 tabindex="-1" ref=${heading}>Sources</h1>
    <p class="hint">Pick a source to read it with each model's fragments highlighted, then click a
      highlighted passage (or press <kbd>j</kbd>) and verify it (<kbd>v</kbd>).</p>
    <div class="filters">
      <label>Search titles <input type="search" value=${search} onInput=${(e) => setSearch(e.target.value)} /></label>
      <label>Status <select value=${status} onChange=${(e) => setStatus(e.target.value)}>
        <option value="">any</option>
        ${["PENDING", "PROCESSING", "PROCESSED", "FAILED"].map((s) => html`<option value=${s}>${label(s)}</option>`)}
      </select></label>
    </div>
    ${page === null ? html`<p>Loading sources…</p>` : html`
      <p>${page.totalCount} source${page.totalCount === 1 ? "" : "s"}</p>
      <table class="sources">
        <thead><tr><th scope="col">Title</th><th scope="col">Type</th><th scope="col">Language</th>
          <th scope="col">Status</th><th scope="col">Runs per model</th></tr></thead>
        <tbody>${page.edges.map(({ node }) => html`<tr>
          <td><a href=${`#/source/${encodeURIComponent(node.id)}`}>${node.title}</a>
            <span class="code">${node.sourceCode}</span></td>
          <td>${label(node.sourceType)}</td><td>${node.language}</td><td>${label(node.status)}</td>
          <td>${node.runsPerModel.length ? node.runsPerModel.map((r) => html`<span class="run-count">
            ${r.model} × ${r.runs}${r.activeRuns ? ` (${r.activeRuns} running)` : ""}</span>`) : "none yet"}</td>
        </tr>`)}</tbody>
      </table>`}
    <${Progress} report=${report} />`;
}

function Reader({ id, me, report, heading }) {
  const [source, setSource] = useState(null);
  const [missing, setMissing] = useState(false);
  const [spans, setSpans] = useState([]);
  const [hidden, setHidden] = useState(() => new Set());
  const [selected, setShown] = useState(null);
  const [notice, setNotice] = useState("");
  // Keys can come faster than renders: the selection is read from a ref, never a stale closure.
  const current = useRef(null);
  const setSelected = useCallback((fragmentId) => { current.current = fragmentId; setShown(fragmentId); }, []);

  const load = useCallback(async () => {
    try {
      const data = await gql(READER, { id });
      if (!data.source) { setMissing(true); return; }
      setMissing(false);
      setSource(data.source);
      const runs = data.source.comparison.entries.map((e) => e.runId);
      const spanData = runs.length ? await gql(SPANS, { id, runs }) : { source: { fragmentSpans: [] } };
      setSpans(spanData.source.fragmentSpans);
    } catch (err) {
      if (err.kind === "graphql" && /not a valid|invalid|global id/i.test(err.message)) setMissing(true);
      else report(err);
    }
  }, [id]);
  useEffect(() => { setSource(null); setSelected(null); load(); }, [id]);
  // A batch that just ended is measured right after: read the comparison again until it is.
  const afterBatch = useCallback(() => {
    [300, 1500, 4000, 8000].forEach((delay) => setTimeout(load, delay));
  }, [load]);

  const models = useMemo(() => (source ? source.comparison.entries.map((e) => e.model) : []), [source]);
  const colour = (model) => PALETTE[Math.max(0, models.indexOf(model)) % PALETTE.length];
  const tint = (model) => TINTS[Math.max(0, models.indexOf(model)) % TINTS.length];
  const visible = useMemo(() => spans.filter((s) => !hidden.has(s.model)), [spans, hidden]);
  const grounded = useMemo(() => visible.filter((s) => s.grounding !== "UNGROUNDED" && s.charStart !== null && s.charEnd !== null), [visible]);
  const ungrounded = useMemo(() => visible.filter((s) => s.grounding === "UNGROUNDED" || s.charStart === null), [visible]);
  const order = useMemo(() => [...grounded, ...ungrounded], [grounded, ungrounded]);

  const decide = useCallback(async (decision, notes) => {
    const selected = current.current;
    if (!selected || !me?.canReview) return;
    const previous = spans.find((s) => s.fragmentId === selected)?.verificationStatus;
    const setStatus = (status) => setSpans((all) => all.map((s) => (s.fragmentId === selected ? { ...s, verificationStatus: status } : s)));
    setStatus(decision); // shown at once; put back if the server refuses
    setNotice(`Marked ${STATUS_TEXT[decision]}.`);
    try {
      const data = await gql(VERIFY, { input: { fragmentId: selected, decision, notes: notes || null } });
      const result = data.verifyFragment;
      if (result.__typename !== "VerifyFragmentPayload") throw new ApiError("graphql", result.message);
      setNotice(`Saved: ${STATUS_TEXT[decision]}.`);
      window.dispatchEvent(new CustomEvent("mmos:verified", { detail: selected }));
    } catch (err) {
      setStatus(previous);
      setNotice("");
      report(err);
    }
  }, [spans, me]);

  const move = useCallback((step) => {
    if (!order.length) return;
    const at = order.findIndex((s) => s.fragmentId === current.current);
    const next = at < 0 ? (step > 0 ? 0 : order.length - 1) : Math.min(order.length - 1, Math.max(0, at + step));
    setSelected(order[next].fragmentId);
    document.querySelector(`[data-first="${CSS.escape(order[next].fragmentId)}"]`)?.scrollIntoView({ block: "center" });
  }, [order]);

  const notesRef = useRef(null);
  useEffect(() => {
    const onKey = (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) {
        if (event.key === "Escape") event.target.blur(); // back to the shortcuts
        return;
      }
      if (event.key === "j") move(1);
      else if (event.key === "k") move(-1);
      else {
        const choice = DECISIONS.find((d) => d.key === event.key);
        if (choice) decide(choice.decision, notesRef.current?.value);
        else return;
      }
      event.preventDefault();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [move, decide]);

  if (missing) {
    return html`<h1 tabindex="-1" ref=${heading}>Source not found</h1>
      <p class="problem" role="alert">No source has the id <code>${id}</code>. It may have been deleted,
        or the link is mistyped.</p><p><a href="#/">Back to the sources</a></p>`;
  }
  if (!source) return html`<h1 tabindex="-1" ref=${heading}>Loading the source…</h1>`;
  const counts = {};
  for (const s of spans) if (s.grounding !== "UNGROUNDED" && s.charStart !== null) counts[s.model] = (counts[s.model] || 0) + 1;

  return html`
    <p><a href="#/">← All sources</a></p>
    <h1 tabindex="-1" ref=${heading}>${source.title} <span class="code">${source.sourceCode}</span></h1>
    <p class="hint">Tick the models whose fragments to show. Click a highlighted passage, or press
      <kbd>j</kbd>/<kbd>k</kbd> to move between fragments, then <kbd>v</kbd> verify,
      <kbd>r</kbd> reject, <kbd>n</kbd> needs review.</p>
    <fieldset class="models"><legend>Models</legend>
      ${models.length === 0 && html`<p>No model has run on this source yet: start a run
        (<code>startMultiModelProcessing</code>, or <code>mmos demo</code>).</p>`}
      ${models.map((model) => html`<label class="model-toggle">
        <input type="checkbox" name="model" value=${model} checked=${!hidden.has(model)}
          onChange=${(e) => setHidden((old) => { const next = new Set(old); if (e.target.checked) next.delete(model); else next.add(model); return next; })} />
        <span class="swatch" style=${{ background: colour(model) }}></span> ${model}
        <span class="count">(${counts[model] || 0} spans)</span></label>`)}
    </fieldset>
    <div class="reader">
      <section class="text" aria-labelledby="text-title">
        <h2 id="text-title" class="sr-only">Source text</h2>
        <${SourceText} text=${source.content} spans=${grounded} colour=${colour} tint=${tint}
          selected=${selected} onSelect=${setSelected} />
      </section>
      <aside class="side">
        <${FragmentCard} id=${selected} me=${me} notesRef=${notesRef} decide=${decide} move=${move}
          status=${spans.find((s) => s.fragmentId === selected)?.verificationStatus} report=${report} notice=${notice} />
        <section aria-labelledby="ungrounded-title">
          <h2 id="ungrounded-title">Not found in the text (${ungrounded.length})</h2>
          ${ungrounded.length === 0 ? html`<p>Every shown fragment is grounded.</p>` : html`<ul class="ungrounded">
            ${ungrounded.map((s) => html`<li><button type="button" class=${s.fragmentId === selected ? "current" : ""}
              onClick=${() => setSelected(s.fragmentId)}><span class="swatch" style=${{ background: colour(s.model) }}></span>
              ${s.model}: ${label(s.category)} (${STATUS_TEXT[s.verificationStatus]})</button></li>`)}</ul>`}
        </section>
      </aside>
    </div>
    <${ComparisonTable} comparison=${source.comparison} colour=${colour} />
    <${CostQualityPlot} comparison=${source.comparison} sweetSpot=${source.sweetSpot} colour=${colour} />
    <${Progress} report=${report} sourceId=${source.id} onDone=${afterBatch} />`;
}

function SourceText({ text, spans, colour, tint, selected, onSelect }) {
  const segments = useMemo(() => segmentsOf(text, spans.map((s) => ({ id: s.fragmentId, model: s.model, start: s.charStart, end: s.charEnd, span: s }))), [text, spans]);
  const firsts = new Set();
  const onClick = (event) => {
    const mark = event.target.closest("mark");
    if (!mark) return;
    const ids = mark.dataset.frags.split(" ");
    const at = ids.indexOf(selected);
    onSelect(ids[(at + 1) % ids.length]); // clicking an overlap again picks the next fragment
  };
  // Focusable so that the scrolling text can be read with the keyboard too.
  return html`<div class="source-text" tabindex="0" role="region" aria-label="Source text with highlights" onClick=${onClick}>${segments.map((segment) => {
    const piece = text.slice(segment.start, segment.end);
    if (!segment.spans.length) return piece;
    // In name order, whatever order the models were toggled in: the stacking never shuffles.
    const models = [...new Set(segment.spans.map((s) => s.model))].sort();
    const ids = segment.spans.map((s) => s.id);
    const first = ids.find((fid) => !firsts.has(fid));
    ids.forEach((fid) => firsts.add(fid));
    const style = {
      background: tint(models[0]),
      boxShadow: models.map((m, i) => `inset 0 -${3 * (i + 1)}px 0 ${colour(m)}`).join(", "),
      paddingBottom: `${3 * models.length}px`,
    };
    const classes = ["seg", models.length > 1 ? "overlap" : "", ids.includes(selected) ? "current" : "",
      segment.spans.some((s) => s.span.verificationStatus === "VERIFIED") ? "verified" : "",
      segment.spans.some((s) => s.span.verificationStatus === "REJECTED") ? "rejected" : ""].join(" ").trim();
    return html`<mark class=${classes} style=${style} data-models=${models.join(" ")} data-frags=${ids.join(" ")}
      data-first=${first}>${piece}</mark>`;
  })}</div>`;
}

function FragmentCard({ id, me, notesRef, decide, move, status, report, notice }) {
  const [fragment, setFragment] = useState(null);
  const reload = useCallback(() => {
    if (!id) return;
    gql(FRAGMENT, { id }).then((d) => setFragment(d.node)).catch(report);
  }, [id]);
  useEffect(() => { setFragment(null); reload(); }, [id]);
  useEffect(() => {
    const onSaved = (event) => { if (event.detail === id) reload(); };
    addEventListener("mmos:verified", onSaved);
    return () => removeEventListener("mmos:verified", onSaved);
  }, [id, reload]);
  if (!id) {
    return html`<section class="card" aria-labelledby="card-title"><h2 id="card-title">Fragment</h2>
      <p>Click a highlighted passage, or press <kbd>j</kbd>, to open its fragment here.</p></section>`;
  }
  const shown = status || fragment?.verificationStatus;
  const readOnly = !me?.canReview;
  return html`<section class="card" aria-labelledby="card-title" id="fragment-card" data-fragment=${id}>
    <h2 id="card-title">${fragment ? fragment.fragmentCode : "Fragment"}
      ${shown && html` <span class=${`status status-${shown.toLowerCase()}`} id="card-status">${STATUS_TEXT[shown]}</span>`}</h2>
    <p class="sr-only" aria-live="polite">${fragment ? `${fragment.fragmentCode}, ${STATUS_TEXT[shown]}` : ""} ${notice}</p>
    ${!fragment ? html`<p>Loading…</p>` : html`
      <blockquote>${fragment.quote}</blockquote>
      <dl class="facts">
        <dt>Model</dt><dd>${fragment.model}</dd>
        <dt>Category</dt><dd>${label(fragment.category)}</dd>
        <dt>Type</dt><dd>${label(fragment.fragmentType)}</dd>
        <dt>Grounding</dt><dd>${label(fragment.grounding)} (score ${fragment.groundingScore})</dd>
        ${whereText(fragment.location) && html`<dt>Where</dt><dd id="card-where">${whereText(fragment.location)}</dd>`}
        ${fragment.mixesSpeakers && html`<dt>Speakers</dt><dd class="warning">mixes two speakers' turns</dd>`}
        ${fragment.insight && html`<dt>Insight</dt><dd>${fragment.insight}</dd>`}
        <dt>Tags</dt><dd>${fragment.tags.length ? fragment.tags.map((t) => t.name).join(", ") : "none"}</dd>
      </dl>`}
    <label for="decision-notes">Notes (optional; <kbd>Esc</kbd> returns to the shortcuts)</label>
    <textarea id="decision-notes" ref=${notesRef} rows="2" disabled=${readOnly}></textarea>
    <div class="decisions" role="group" aria-label="Decision">
      ${DECISIONS.map((d) => html`<button type="button" class=${`decide decide-${d.key}`} disabled=${readOnly}
        aria-keyshortcuts=${d.key} onClick=${() => decide(d.decision, notesRef.current?.value)}>${d.label} <kbd>${d.key}</kbd></button>`)}
    </div>
    ${readOnly && html`<p class="hint">Read-only: ${me ? `your key has the ${me.role} role` : "no access"}; deciding needs an editor key.</p>`}
    <div class="moves"><button type="button" onClick=${() => move(-1)}>Previous <kbd>k</kbd></button>
      <button type="button" onClick=${() => move(1)}>Next <kbd>j</kbd></button></div>
    ${fragment && html`<h3>Verification history</h3>${fragment.verificationHistory.length === 0
      ? html`<p>No decision yet.</p>`
      : html`<ol class="history">${fragment.verificationHistory.map((e) => html`<li>
        ${STATUS_TEXT[e.decision]} by ${e.reviewer}, ${new Date(e.createdAt).toLocaleString()}
        ${e.notes && html`: “${e.notes}”`}</li>`)}</ol>`}`}
  </section>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
