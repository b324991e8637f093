// Actors: the list of GET /v1/actors (search, sorts, paging) and an
// actor's page with their memories and events.

import { core, qs } from "./api.js";
import { EventList } from "./events.js";
import { MemoryList, SORTS } from "./memories.js";
import { Loaded, Pager, Truncated, fmtNum, fmtTime, href, html, update, useField, useLoad } from "./ui.js";

const PAGE = 50;

const ACTOR_SORTS = [
  ["first_memory_desc", "Newest first memory"],
  ["first_memory_asc", "Oldest first memory"],
  ["last_memory_desc", "Latest memory"],
  ["actor_id_asc", "Actor id"],
];

export function ActorsView({ query }) {
  const [q, setQ] = useField(query.q || "");
  const set = (changes) => update(["actors"], { offset: undefined, ...changes });
  const state = useLoad(
    () => core(`/actors${qs({ q: query.q, sort: query.sort, offset: query.offset, limit: PAGE })}`),
    [query.q, query.sort, query.offset],
  );
  return html`<h1>Actors</h1>
    <form class="filters" role="search" onSubmit=${(e) => {
      e.preventDefault();
      set({ q: q.trim() || undefined });
    }}>
      <div class="field">
        <label for="actor-q">Search actor id</label>
        <input id="actor-q" type="search" value=${q} onInput=${(e) => setQ(e.target.value)} />
      </div>
      <div class="field">
        <label for="actor-sort">Sort</label>
        <select id="actor-sort" value=${query.sort || "first_memory_desc"} onChange=${(e) => set({ sort: e.target.value })}>
          ${ACTOR_SORTS.map(([v, label]) => html`<option key=${v} value=${v}>${label}</option>`)}
        </select>
      </div>
      <button type="submit">Search</button>
    </form>
    <${Loaded} state=${state} what="actors">${(page) => html`
      <${Truncated} truncated=${page.truncated} />
      ${page.items.length === 0
        ? html`<p class="muted">No actor matches.</p>`
        : html`<div class="table-wrap"><table class="list">
            <caption class="sr-only">Actors</caption>
            <thead><tr><th scope="col">Actor</th><th scope="col" class="num">Memories</th><th scope="col" class="num">Active</th><th scope="col">First memory</th><th scope="col">Latest memory</th></tr></thead>
            <tbody>
              ${page.items.map(
                (a) => html`<tr key=${a.actor_id}>
                  <th scope="row"><a href=${href(["actors", a.actor_id])}>${a.actor_id}</a></th>
                  <td class="num">${fmtNum(a.memory_count)}</td>
                  <td class="num">${fmtNum(a.active_memory_count)}</td>
                  <td>${fmtTime(a.first_memory_at)}</td>
                  <td>${fmtTime(a.last_memory_at)}</td>
                </tr>`,
              )}
            </tbody>
          </table></div>`}
      <${Pager} total=${page.total} limit=${page.limit} offset=${page.offset} label="Actors"
        onPage=${(offset) => update(["actors"], { offset: offset || undefined })} />
    `}<//>`;
}

export function ActorPage({ id, query }) {
  const state = useLoad(() => core(`/actors/${encodeURIComponent(id)}`), [id]);
  const set = (changes) => update(["actors", id], changes);
  return html`<p class="crumbs"><a href="#/actors">Actors</a> ›</p>
    <h1>${id}</h1>
    <${Loaded} state=${state} what="the actor">${(a) => html`<dl class="facts">
        <div><dt>Memories</dt><dd>${fmtNum(a.memory_count)} (${fmtNum(a.active_memory_count)} active)</dd></div>
        <div><dt>First memory</dt><dd>${fmtTime(a.first_memory_at)}</dd></div>
        <div><dt>Latest memory</dt><dd>${fmtTime(a.last_memory_at)}</dd></div>
        <div><dt>Scopes</dt><dd>${a.scope_levels.join(", ") || "—"}</dd></div>
        <div><dt>Roles</dt><dd>${a.role_ids.join(", ") || "—"}</dd></div>
        <div><dt>Teams</dt><dd>${a.team_ids.join(", ") || "—"}</dd></div>
      </dl>`}<//>
    <section aria-labelledby="am-h">
      <h2 id="am-h">Memories</h2>
      <div class="filters">
        <div class="field">
          <label for="am-sort">Sort</label>
          <select id="am-sort" value=${query.sort || "observed_at_desc"} onChange=${(e) => set({ sort: e.target.value, moff: undefined })}>
            ${SORTS.map(([v, label]) => html`<option key=${v} value=${v}>${label}</option>`)}
          </select>
        </div>
      </div>
      <${MemoryList} label="Memories of the actor" filter=${{ actor_id: id, status: "all", sort: query.sort, offset: query.moff }}
        onPage=${(offset) => set({ moff: offset || undefined })} />
    </section>
    <section aria-labelledby="ae-h">
      <h2 id="ae-h">Events</h2>
      <${EventList} label="Events of the actor" filter=${{ actor_id: id, offset: query.eoff }} onPage=${(offset) => set({ eoff: offset || undefined })} />
    </section>`;
}
