// Raw events: the list of GET /api/console/events with its filters, and
// one event's page with the memories taken from it.

import { control, core, qs } from "./api.js";
import { Loaded, Pager, Truncated, fmtTime, href, html, update, useField, useLoad } from "./ui.js";
import { MemoryCard } from "./memories.js";

const PAGE = 25;
const KINDS = ["user_message", "assistant_message", "tool_result", "app_event"];

export function EventCard({ e }) {
  return html`<li class="card">
    <a class="card-title" href=${href(["events", e.event_id])}>${e.content}</a>
    <dl class="meta">
      <div><dt>At</dt><dd>${fmtTime(e.ts)}</dd></div>
      <div><dt>Actor</dt><dd><a href=${href(["actors", e.actor_id])}>${e.actor_id}</a></dd></div>
      <div><dt>Kind</dt><dd>${e.kind}</dd></div>
      <div><dt>Session</dt><dd>${e.session_id || "—"}</dd></div>
    </dl>
  </li>`;
}

// A page of events matching `filter` (the API's parameters).
export function EventList({ filter, onPage, label = "Events" }) {
  const state = useLoad(() => control(`/console/events${qs({ ...filter, limit: PAGE })}`), [JSON.stringify(filter)]);
  return html`<${Loaded} state=${state} what="events">${(page) => html`
    <${Truncated} truncated=${page.truncated} />
    ${page.items.length === 0
      ? html`<p class="muted">No event matches.</p>`
      : html`<ul class="cards" aria-label=${label}>${page.items.map((e) => html`<${EventCard} key=${e.event_id} e=${e} />`)}</ul>`}
    <${Pager} total=${page.total} limit=${page.limit} offset=${page.offset} onPage=${onPage} label=${label} />
  `}<//>`;
}

export function EventsView({ query }) {
  const [actor, setActor] = useField(query.actor_id || "");
  const [sessionId, setSessionId] = useField(query.session_id || "");
  const set = (changes) => update(["events"], { offset: undefined, ...changes });
  return html`<h1>Raw events</h1>
    <form class="filters" onSubmit=${(e) => {
      e.preventDefault();
      set({ actor_id: actor.trim() || undefined, session_id: sessionId.trim() || undefined });
    }}>
      <div class="field">
        <label for="ev-actor">Actor id</label>
        <input id="ev-actor" value=${actor} onInput=${(e) => setActor(e.target.value)} />
      </div>
      <div class="field">
        <label for="ev-session">Session id</label>
        <input id="ev-session" value=${sessionId} onInput=${(e) => setSessionId(e.target.value)} />
      </div>
      <div class="field">
        <label for="ev-kind">Kind</label>
        <select id="ev-kind" value=${query.kind || ""} onChange=${(e) => set({ kind: e.target.value || undefined })}>
          <option value="">any</option>
          ${KINDS.map((k) => html`<option key=${k} value=${k}>${k}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="ev-sort">Sort</label>
        <select id="ev-sort" value=${query.sort || "ts_desc"} onChange=${(e) => set({ sort: e.target.value })}>
          <option value="ts_desc">Newest first</option>
          <option value="ts_asc">Oldest first</option>
        </select>
      </div>
      <button type="submit">Filter</button>
    </form>
    <${EventList} filter=${{ actor_id: query.actor_id, session_id: query.session_id, kind: query.kind, sort: query.sort, offset: query.offset }}
      onPage=${(offset) => update(["events"], { offset: offset || undefined })} />`;
}

// The memories of the event's actor that name it as a source.
function MemoriesFrom({ e }) {
  const state = useLoad(
    () => core(`/console/memories${qs({ actor_id: e.actor_id, status: "all", limit: 200 })}`),
    [e.event_id],
  );
  return html`<section aria-labelledby="from-h">
    <h2 id="from-h">Memories from this event</h2>
    <${Loaded} state=${state} what="memories">${(page) => {
      const from = page.items.filter((m) => m.source_event_ids.includes(e.event_id));
      return from.length
        ? html`<ul class="cards">${from.map((m) => html`<${MemoryCard} key=${m.memory_id} m=${m} />`)}</ul>`
        : html`<p class="muted">No memory of ${e.actor_id} names this event as a source.</p>`;
    }}<//>
  </section>`;
}

export function EventPage({ id }) {
  const state = useLoad(() => control(`/console/events/${encodeURIComponent(id)}`), [id]);
  return html`<${Loaded} state=${state} what="the event">${(e) => html`
    <p class="crumbs"><a href="#/events">Events</a> ›</p>
    <h1>Event</h1>
    <blockquote class="memory-text" data-testid="event-content">${e.content}</blockquote>
    <dl class="facts">
      <div><dt>At</dt><dd>${fmtTime(e.ts)}</dd></div>
      <div><dt>Ingested</dt><dd>${fmtTime(e.ingested_at)}</dd></div>
      <div><dt>Actor</dt><dd><a href=${href(["actors", e.actor_id])}>${e.actor_id}</a></dd></div>
      <div><dt>Kind</dt><dd>${e.kind}</dd></div>
      <div><dt>Session</dt><dd>${e.session_id ? html`<a href=${href(["events"], { session_id: e.session_id })}>${e.session_id}</a>` : "—"}</dd></div>
      <div><dt>Role / team</dt><dd>${e.role_id || "—"} / ${e.team_id || "—"}</dd></div>
      <div><dt>Event id</dt><dd><code>${e.event_id}</code></dd></div>
    </dl>
    ${e.metadata && html`<h2>Metadata</h2><pre class="json">${JSON.stringify(e.metadata, null, 2)}</pre>`}
    <${MemoriesFrom} e=${e} />
  `}<//>`;
}
