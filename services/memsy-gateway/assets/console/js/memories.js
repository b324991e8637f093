// The memories view: filters, sorts, text search and paging of
// GET /v1/console/memories, with the state in the URL's hash.

import { core, qs } from "./api.js";
import { Chip, Loaded, Pager, StatusChip, Truncated, fmtScore, fmtTime, href, html, update, useField, useLoad } from "./ui.js";

export const PAGE = 25;

export const SORTS = [
  ["observed_at_desc", "Newest observed"],
  ["observed_at_asc", "Oldest observed"],
  ["created_at_desc", "Newest created"],
  ["strength_desc", "Strongest"],
  ["confidence_desc", "Most confident"],
];

const STATUSES = [
  ["active", "Active"],
  ["superseded", "Superseded"],
  ["archived", "Archived"],
  ["all", "All"],
];

// One memory as a card of a list.
export function MemoryCard({ m }) {
  const actor = m.scope.actor_id;
  return html`<li class="card memory-card">
    <a class="card-title" href=${href(["memories", m.memory_id])}>${m.text}</a>
    <div class="chips">
      <${StatusChip} status=${m.status} />
      ${m.pinned && html`<${Chip} tone="pinned">pinned<//>`}
      <${Chip}>${m.type}<//>
      <${Chip}>${m.kind}<//>
    </div>
    <dl class="meta">
      <div><dt>Actor</dt><dd>${actor ? html`<a href=${href(["actors", actor])}>${actor}</a>` : m.scope.level}</dd></div>
      <div><dt>Observed</dt><dd>${fmtTime(m.observed_at)}</dd></div>
      <div><dt>Confidence</dt><dd>${fmtScore(m.confidence)}</dd></div>
      <div><dt>Strength</dt><dd>${fmtScore(m.strength)}</dd></div>
    </dl>
  </li>`;
}

// A page of memories matching `filter` (the API's parameters).
export function MemoryList({ filter, onPage, label = "Memories" }) {
  const state = useLoad(() => core(`/console/memories${qs({ ...filter, limit: PAGE })}`), [JSON.stringify(filter)]);
  return html`<${Loaded} state=${state} what="memories">${(page) => html`
    <${Truncated} truncated=${page.truncated} />
    ${page.items.length === 0
      ? html`<p class="muted">No memory matches.</p>`
      : html`<ul class="cards" aria-label=${label}>${page.items.map((m) => html`<${MemoryCard} key=${m.memory_id} m=${m} />`)}</ul>`}
    <${Pager} total=${page.total} limit=${page.limit} offset=${page.offset} onPage=${onPage} label=${label} />
  `}<//>`;
}

export function MemoriesView({ query }) {
  const status = query.status || "active";
  const [search, setSearch] = useField(query.search || "");
  // The types and kinds the org's memories have, for the filters.
  const stats = useLoad(() => core("/console/memories/stats"), []);
  const set = (changes) => update(["memories"], { offset: undefined, ...changes });
  const types = Object.keys((stats.data && stats.data.by_type) || {}).sort();
  const kinds = Object.keys((stats.data && stats.data.by_kind) || {}).sort();
  const options = (values, current) => {
    const all = current && !values.includes(current) ? [...values, current] : values;
    return all.map((v) => html`<option key=${v} value=${v}>${v}</option>`);
  };
  const filter = {
    status,
    type: query.type,
    kind: query.kind,
    sort: query.sort,
    search: query.search,
    offset: query.offset,
  };
  return html`<h1>Memories</h1>
    <div class="chip-group" role="group" aria-label="Status">
      ${STATUSES.map(
        ([v, label]) => html`<button key=${v} type="button" class="chip-button" aria-pressed=${status === v ? "true" : "false"}
            onClick=${() => set({ status: v === "active" ? undefined : v })}>${label}</button>`,
      )}
    </div>
    <form class="filters" role="search" onSubmit=${(e) => {
      e.preventDefault();
      set({ search: search.trim() || undefined });
    }}>
      <div class="field">
        <label for="mem-search">Search text</label>
        <input id="mem-search" type="search" value=${search} onInput=${(e) => setSearch(e.target.value)} placeholder="words in text, title or summary" />
      </div>
      <div class="field">
        <label for="mem-type">Type</label>
        <select id="mem-type" value=${query.type || ""} onChange=${(e) => set({ type: e.target.value || undefined })}>
          <option value="">any</option>
          ${options(types, query.type)}
        </select>
      </div>
      <div class="field">
        <label for="mem-kind">Kind</label>
        <select id="mem-kind" value=${query.kind || ""} onChange=${(e) => set({ kind: e.target.value || undefined })}>
          <option value="">any</option>
          ${options(kinds, query.kind)}
        </select>
      </div>
      <div class="field">
        <label for="mem-sort">Sort</label>
        <select id="mem-sort" value=${query.sort || "observed_at_desc"} onChange=${(e) => set({ sort: e.target.value })}>
          ${SORTS.map(([v, label]) => html`<option key=${v} value=${v}>${label}</option>`)}
        </select>
      </div>
      <button type="submit">Search</button>
    </form>
    <${MemoryList} filter=${filter} onPage=${(offset) => update(["memories"], { offset: offset || undefined })} />`;
}
