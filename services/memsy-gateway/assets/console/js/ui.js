// Shared pieces of the views: the html tag, hash routing, loading data,
// chips, paging, charts and formatting.

import { h } from "../vendor/preact.mjs";
import { useCallback, useEffect, useRef, useState } from "../vendor/hooks.mjs";
import htm from "../vendor/htm.mjs";

export const html = htm.bind(h);

// ---- routing: #/path/segments?query, so that a reload shows the same view.

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/memories";
  const [path, query = ""] = raw.split("?");
  return {
    parts: path.split("/").filter(Boolean).map(decodeURIComponent),
    query: Object.fromEntries(new URLSearchParams(query)),
  };
}

export function href(parts, query) {
  const path = parts.map(encodeURIComponent).join("/");
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  const s = p.toString();
  return `#/${path}${s ? `?${s}` : ""}`;
}

export function go(parts, query) {
  location.hash = href(parts, query);
}

// Changes some parameters of the current address, starting from the address
// itself rather than from what the view last rendered, so that two quick
// changes in a row both hold.
export function update(parts, changes) {
  go(parts, { ...parseHash().query, ...changes });
}

// A form field's value that follows `external` (a parameter of the address)
// when the address changes, say by the Back button, and is left alone
// otherwise: not even on mount, where it would wipe what was typed already.
export function useField(external) {
  const [value, setValue] = useState(external);
  const seen = useRef(external);
  useEffect(() => {
    if (seen.current !== external) {
      seen.current = external;
      setValue(external);
    }
  }, [external]);
  return [value, setValue];
}

// ---- data

// Runs `load` (an async function) whenever `deps` change; `reload` runs it again.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function Loading({ what }) {
  return html`<p class="muted" role="status">Loading ${what}…</p>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message || String(error)}</div>`;
}

// Data, or its loading note or its error.
export function Loaded({ state, what, children }) {
  if (state.error) return html`<${ErrorBox} error=${state.error} />`;
  if (state.loading && !state.data) return html`<${Loading} what=${what} />`;
  return children(state.data);
}

// ---- small pieces

export function Chip({ tone, children }) {
  return html`<span class=${tone ? `chip chip-${tone}` : "chip"}>${children}</span>`;
}

export function StatusChip({ status }) {
  return html`<${Chip} tone=${status}>${status}<//>`;
}

export function Pager({ total, limit, offset, onPage, label }) {
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + limit, total);
  return html`<nav class="pager" aria-label=${`${label} pages`}>
    <button type="button" disabled=${offset === 0} onClick=${() => onPage(Math.max(0, offset - limit))}>Previous</button>
    <span aria-live="polite">${first}–${last} of ${total}</span>
    <button type="button" disabled=${last >= total} onClick=${() => onPage(offset + limit)}>Next</button>
  </nav>`;
}

export function Truncated({ truncated }) {
  return truncated
    ? html`<p class="note" role="note">The store holds more than the console reads at once: counts and pages cover the first part only.</p>`
    : null;
}

// Horizontal bars, with the numbers in a table for every reader.
export function Bars({ title, rows }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    ${rows.length === 0
      ? html`<p class="muted">Nothing yet.</p>`
      : html`<table class="bars">
          <tbody>
            ${rows.map(
              (r) => html`<tr key=${r.label}>
                <th scope="row">${r.label}</th>
                <td class="bar-cell"><span class="bar" style=${{ width: `${(100 * r.value) / max}%` }}></span></td>
                <td class="num">${fmtNum(r.value)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
  </figure>`;
}

// Vertical bars over time (label = a day); the table is for screen readers.
export function Columns({ title, rows }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    ${rows.length === 0
      ? html`<p class="muted">Nothing yet.</p>`
      : html`<div class="columns" aria-hidden="true">
            ${rows.map(
              (r) => html`<span key=${r.label} class="column" title=${`${r.label}: ${r.value}`}
                  style=${{ height: `${Math.max(2, (100 * r.value) / max)}%` }}></span>`,
            )}
          </div>
          <div class="columns-axis" aria-hidden="true"><span>${rows[0].label}</span><span>${rows[rows.length - 1].label}</span></div>
          <table class="sr-only">
            <caption>${title}</caption>
            <tbody>${rows.map((r) => html`<tr key=${r.label}><th scope="row">${r.label}</th><td>${r.value}</td></tr>`)}</tbody>
          </table>`}
  </figure>`;
}

// ---- formatting

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function fmtNum(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString("en");
}

export function fmtScore(x) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(2);
}

// An object's entries as chart rows, largest first.
export function rowsOf(obj) {
  return Object.entries(obj || {})
    .map(([label, value]) => ({ label, value }))
    .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
}

