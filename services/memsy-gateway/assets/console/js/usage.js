// Usage (admin scope): this month per dimension against the plan's limits,
// the daily series, and the key's rate-limit window.

import { control, session } from "./api.js";
import { Columns, Loaded, fmtNum, fmtTime, html, useLoad } from "./ui.js";

function Meter({ d }) {
  const pct = d.limit ? Math.min(100, (100 * d.used) / d.limit) : 0;
  return html`<tr>
    <th scope="row">${d.dimension.replaceAll("_", " ")}</th>
    <td class="bar-cell">${d.limit
      ? html`<span class=${`bar ${pct >= 90 ? "bar-high" : ""}`} style=${{ width: `${pct}%` }}></span>`
      : html`<span class="muted">no limit</span>`}</td>
    <td class="num">${fmtNum(d.used)}${d.limit ? ` / ${fmtNum(d.limit)}` : ""}</td>
  </tr>`;
}

// X-RateLimit-Reset is a Unix time: the seconds left from now.
function resetIn(reset) {
  return Math.max(0, Math.round(Number(reset) - Date.now() / 1000));
}

function RateLimit() {
  const l = session.limits;
  if (!l || l.rateLimit === null) return html`<p class="muted">This server reports no rate limit for the key.</p>`;
  return html`<dl class="tiles">
    <div><dt>Requests per window</dt><dd>${fmtNum(l.rateLimit)}</dd></div>
    <div><dt>Remaining</dt><dd>${fmtNum(l.rateRemaining)}</dd></div>
    <div><dt>Window resets in</dt><dd>${resetIn(l.rateReset)} s</dd></div>
  </dl>`;
}

export function UsageView() {
  const state = useLoad(
    () => Promise.all([control("/usage/summary"), control("/usage/timeseries")]),
    [],
  );
  return html`<h1>Usage</h1>
    <${Loaded} state=${state} what="usage">${([summary, series]) => {
      const byDim = {};
      for (const p of series.data) (byDim[p.dimension] ||= []).push({ label: p.date.slice(0, 10), value: p.quantity });
      return html`
        <p>Plan <strong>${summary.tier}</strong>, from ${fmtTime(summary.period_start)} to ${fmtTime(summary.period_end)}.</p>
        <figure class="chart">
          <figcaption>This month against the plan's limits</figcaption>
          <table class="bars"><tbody>${summary.dimensions.map((d) => html`<${Meter} key=${d.dimension} d=${d} />`)}</tbody></table>
        </figure>
        <h2>Rate limit</h2>
        <${RateLimit} />
        <h2>Per day</h2>
        <div class="grid">
          ${Object.entries(byDim).map(
            ([dim, rows]) => html`<${Columns} key=${dim} title=${dim.replaceAll("_", " ")} rows=${rows.sort((a, b) => a.label.localeCompare(b.label))} />`,
          )}
          ${Object.keys(byDim).length === 0 && html`<p class="muted">No usage recorded this month.</p>`}
        </div>`;
    }}<//>`;
}
