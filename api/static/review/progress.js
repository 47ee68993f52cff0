// Live progress of running batches, from the batchProgress subscription.
import { gql, subscribe } from "./api.js";
import { html, label, money, useEffect, useState } from "./ui.js";

const RUNNING = `{ batches(first: 50, status: [QUEUED, RUNNING]) { edges { node {
  id model status progress costUsd runs { source { id title } } } } } }`;
const FOLLOW = `subscription Follow($id: ID!) { batchProgress(batchId: $id) {
  kind progress costUsd fragments model batchId } }`;
const ENDED = new Set(["BATCH_DONE", "BATCH_FAILED", "CANCELLED"]);

export function Progress({ report, sourceId, onDone }) {
  const [batches, setBatches] = useState(null);
  const [state, setState] = useState({});
  const find = () => gql(RUNNING).then((data) => {
    const found = data.batches.edges.map((e) => e.node)
      .filter((b) => !sourceId || b.runs.some((r) => r.source?.id === sourceId));
    setBatches((old) => [...(old || []).filter((b) => !found.some((f) => f.id === b.id) && state[b.id]?.ended), ...found]);
  }).catch(report);
  useEffect(() => { find(); }, [sourceId]);
  useEffect(() => {
    if (!batches) return undefined;
    const stops = batches.filter((b) => !state[b.id]?.ended).map((b) => subscribe(FOLLOW, { id: b.id }, {
      next: (data) => {
        const event = data.batchProgress;
        const ended = ENDED.has(event.kind);
        setState((old) => ({ ...old, [b.id]: { ...event, ended } }));
        if (ended && onDone) onDone();
      },
      complete: () => setState((old) => ({ ...old, [b.id]: { ...(old[b.id] || {}), ended: true } })),
      error: report,
    }));
    return () => stops.forEach((stop) => stop());
  }, [batches]);
  return html`<section aria-labelledby="progress-title" class="progress">
    <h2 id="progress-title">Running batches</h2>
    ${batches === null ? html`<p>Looking for running batches…</p>`
      : batches.length === 0 ? html`<p>No batch is running${sourceId ? " on this source" : ""}.</p>`
      : html`<ul>${batches.map((b) => {
        const live = state[b.id] || {};
        const progress = Math.round(Number(live.progress ?? b.progress) * 100);
        const id = `batch-${b.id}`;
        return html`<li data-batch=${b.id}>
          <label for=${id}>${b.model}${sourceId ? "" : ` on ${b.runs[0]?.source?.title || "a source"}`}:
            ${progress}% · ${money(live.costUsd ?? b.costUsd)} so far · ${live.fragments ?? 0} fragments
            ${live.ended ? ` · ${label(live.kind || "done")}` : ""}</label>
          <progress id=${id} max="100" value=${progress}>${progress}%</progress></li>`;
      })}</ul>`}
    <button type="button" onClick=${find}>Look again for running batches</button>
  </section>`;
}
