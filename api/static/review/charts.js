// Comparison table (quality intervals, paired differences) and the cost–quality plot.
import { html, money, useState } from "./ui.js";

const fixed = (value, digits = 2) => (value === null || value === undefined ? "n/a" : Number(value).toFixed(digits));

function IntervalBar({ low, high, score }) {
  const x = (v) => (Math.max(0, Math.min(10, v)) / 10) * 120;
  return html`<svg class="interval" width="124" height="14" viewBox="-2 0 124 14" role="img"
    aria-label=${`quality ${fixed(score)}, 90% interval ${fixed(low)} to ${fixed(high)} out of 10`}>
    <line x1="0" x2="120" y1="7" y2="7" stroke="#767676" stroke-width="1" />
    <rect x=${x(low)} width=${Math.max(1, x(high) - x(low))} y="3" height="8" fill="#0072B2" opacity="0.45" />
    <line x1=${x(score)} x2=${x(score)} y1="1" y2="13" stroke="#000" stroke-width="2" /></svg>`;
}

function Versus({ entry }) {
  if (entry.isReference) return html`<span>the reference</span>`;
  const v = entry.vsReference;
  if (!v) return html`<span>no reference model</span>`;
  const pct = v.qualityDeltaPct === null ? "" : ` (${v.qualityDeltaPct > 0 ? "+" : ""}${fixed(v.qualityDeltaPct, 1)}%)`;
  return html`<span title=${v.summary}>${v.qualityDelta > 0 ? "+" : ""}${fixed(v.qualityDelta)}${pct},
    90% CI ${fixed(v.low)}..${fixed(v.high)} over ${v.chunks} chunks: <strong>${v.verdict.toLowerCase().replace(/_/g, " ")}</strong>
    ${v.chunksNeeded ? html`<span class="hint"> (about ${v.chunksNeeded} more chunks to decide)</span>` : ""}</span>`;
}

export function ComparisonTable({ comparison, colour }) {
  const ref = comparison.reference;
  return html`<section aria-labelledby="comparison-title">
    <h2 id="comparison-title">Comparison</h2>
    <p>Reference: ${ref.kind.toLowerCase().replace(/_/g, " ")}${ref.model ? ` (${ref.model})` : ""}.
      ${comparison.pendingRuns ? ` ${comparison.pendingRuns} run(s) still processing: the comparison is partial.` : ""}</p>
    ${comparison.entries.length === 0 ? html`<p>Nothing measured yet.</p>` : html`
    <table class="comparison">
      <thead><tr><th scope="col">Model</th><th scope="col">Quality (0–10) and 90% interval</th>
        <th scope="col">Against the reference</th><th scope="col">Cost per grounded fragment</th>
        <th scope="col">Latency</th><th scope="col">Grounded / fragments</th></tr></thead>
      <tbody>${comparison.entries.map((e) => html`<tr data-model=${e.model}>
        <th scope="row"><span class="swatch" style=${{ background: colour(e.model) }}></span> ${e.model}
          ${e.isReference ? html` <span class="badge">reference</span>` : e.provisional ? html` <span class="badge">provisional</span>` : ""}</th>
        <td><span class="score">${fixed(e.qualityScore)}</span> <${IntervalBar} low=${e.qualityLow} high=${e.qualityHigh} score=${e.qualityScore} />
          <span class="range">${fixed(e.qualityLow)}–${fixed(e.qualityHigh)}</span></td>
        <td><${Versus} entry=${e} /></td>
        <td>${money(e.costPerFragment)}</td>
        <td>${(e.latencyMs / 1000).toFixed(2)} s</td>
        <td>${e.groundedFragmentCount} / ${e.fragmentCount}</td></tr>`)}</tbody>
    </table>`}</section>`;
}

const W = 560;
const H = 300;
const PAD = { left: 64, right: 48, top: 16, bottom: 44 };

export function CostQualityPlot({ comparison, sweetSpot, colour }) {
  const [hover, setHover] = useState(null);
  const points = comparison.entries.map((e) => ({ ...e, cost: e.costPerFragment === null ? null : Number(e.costPerFragment) }));
  const priced = points.filter((p) => p.cost !== null);
  const maxCost = Math.max(0, ...priced.map((p) => p.cost)) || 1;
  const x = (cost) => PAD.left + (cost / maxCost) * (W - PAD.left - PAD.right);
  const y = (quality) => H - PAD.bottom - (quality / 10) * (H - PAD.top - PAD.bottom);
  const frontier = sweetSpot.paretoFrontier.filter((c) => c.costPerFragment !== null)
    .map((c) => ({ x: x(Number(c.costPerFragment)), y: y(c.quality) })).sort((a, b) => a.x - b.x);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => t * maxCost);
  return html`<section aria-labelledby="plot-title" class="plot">
    <h2 id="plot-title">Cost and quality</h2>
    <p>One point per run; the line joins the Pareto frontier (no other run is both cheaper and
      better); the ring marks the sweet spot${sweetSpot.model ? `: ${sweetSpot.model}` : ""}. ${sweetSpot.reason}</p>
    ${priced.length === 0 ? html`<p>No run has a cost per grounded fragment yet.</p>` : html`
    <svg width=${W} height=${H} viewBox=${`0 0 ${W} ${H}`} role="group" aria-label="Cost per grounded fragment against quality" id="cost-quality">
      <line x1=${PAD.left} x2=${W - PAD.right} y1=${H - PAD.bottom} y2=${H - PAD.bottom} stroke="#333" />
      <line x1=${PAD.left} x2=${PAD.left} y1=${PAD.top} y2=${H - PAD.bottom} stroke="#333" />
      ${[0, 2.5, 5, 7.5, 10].map((q) => html`<text x=${PAD.left - 8} y=${y(q) + 4} text-anchor="end" font-size="11" fill="#333">${q}</text>`)}
      ${ticks.map((c) => html`<text x=${x(c)} y=${H - PAD.bottom + 16} text-anchor="middle" font-size="11" fill="#333">${money(c)}</text>`)}
      <text x=${(W + PAD.left) / 2} y=${H - 6} text-anchor="middle" font-size="12" fill="#333">cost per grounded fragment (USD)</text>
      <text x="14" y=${(H - PAD.bottom) / 2} text-anchor="middle" font-size="12" fill="#333" transform=${`rotate(-90 14 ${(H - PAD.bottom) / 2})`}>quality</text>
      ${frontier.length > 1 && html`<polyline class="frontier" points=${frontier.map((p) => `${p.x},${p.y}`).join(" ")}
        fill="none" stroke="#555" stroke-width="1.5" stroke-dasharray="5 3" />`}
      ${priced.map((p) => html`<g class="point" tabindex="0" role="img" data-model=${p.model} data-run=${p.runId}
          data-quality=${p.qualityScore} data-cost=${p.costPerFragment}
          aria-label=${`${p.model}: quality ${p.qualityScore.toFixed(2)}, ${money(p.cost)} per grounded fragment, latency ${(p.latencyMs / 1000).toFixed(2)} s`}
          onMouseEnter=${() => setHover(p)} onMouseLeave=${() => setHover(null)} onFocus=${() => setHover(p)} onBlur=${() => setHover(null)}>
        <circle cx=${x(p.cost)} cy=${y(p.qualityScore)} r="7" fill=${colour(p.model)} stroke="#000" />
        ${p.model === sweetSpot.model && html`<circle class="sweet-spot" cx=${x(p.cost)} cy=${y(p.qualityScore)} r="13" fill="none" stroke="#000" stroke-width="2" />`}
      </g>`)}
    </svg>`}
    <p class="tooltip" aria-live="polite" id="plot-tooltip">${hover
      ? `${hover.model}: quality ${hover.qualityScore.toFixed(2)} (${hover.qualityLow.toFixed(2)}–${hover.qualityHigh.toFixed(2)}), ${money(hover.cost)} per grounded fragment, ${hover.groundedFragmentCount} grounded, latency ${(hover.latencyMs / 1000).toFixed(2)} s`
      : "Hover or focus a point for its numbers."}</p>
  </section>`;
}
