// A memory's page: everything the console knows of it, its source events,
// and pin, archive and delete for keys with the write scope.

import { useState } from "../vendor/hooks.mjs";
import { can, control, core } from "./api.js";
import { Chip, ErrorBox, Loaded, StatusChip, fmtScore, fmtTime, go, href, html, useLoad } from "./ui.js";

function Actions({ m, onChanged }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [note, setNote] = useState(null);
  if (!can("write")) return null;
  const run = async (what, fn) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      setNote(what);
      onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const patch = (body, what) => run(what, () => core(`/memories/${m.memory_id}`, { method: "PATCH", body }));
  const del = () => {
    if (!window.confirm("Delete this memory? It is gone from every view and from search; this cannot be undone.")) return;
    run("Deleted.", async () => {
      await core(`/memories/${m.memory_id}`, { method: "DELETE" });
      go(["memories"], {});
    });
  };
  return html`<section class="actions" aria-label="Actions">
    <button type="button" disabled=${busy} onClick=${() => patch({ pinned: !m.pinned }, m.pinned ? "Unpinned." : "Pinned.")}>
      ${m.pinned ? "Unpin" : "Pin"}
    </button>
    ${m.status === "archived"
      ? html`<button type="button" disabled=${busy} onClick=${() => patch({ status: "active" }, "Restored.")}>Restore</button>`
      : html`<button type="button" disabled=${busy || m.status === "superseded"} onClick=${() => patch({ status: "archived" }, "Archived.")}>Archive</button>`}
    <button type="button" class="danger" disabled=${busy} onClick=${del}>Delete</button>
    <span role="status" class="muted">${note}</span>
    <${ErrorBox} error=${error} />
  </section>`;
}

// The memory's source events, each fetched by id: an event not indexed
// (yet, or any more) is said so rather than hidden.
function Sources({ ids }) {
  const state = useLoad(
    () =>
      Promise.all(
        ids.map((id) =>
          control(`/console/events/${encodeURIComponent(id)}`).then(
            (event) => ({ id, event }),
            (error) => ({ id, error }),
          ),
        ),
      ),
    [ids.join(",")],
  );
  return html`<section aria-labelledby="sources-h">
    <h2 id="sources-h">Source events</h2>
    ${ids.length === 0
      ? html`<p class="muted">This memory names no source event.</p>`
      : html`<${Loaded} state=${state} what="source events">${(rows) => html`<ol class="cards">
          ${rows.map(({ id, event, error }) =>
            event
              ? html`<li key=${id} class="card">
                  <a class="card-title" href=${href(["events", id])}>${event.content}</a>
                  <dl class="meta">
                    <div><dt>At</dt><dd>${fmtTime(event.ts)}</dd></div>
                    <div><dt>Kind</dt><dd>${event.kind}</dd></div>
                    <div><dt>Session</dt><dd>${event.session_id || "—"}</dd></div>
                  </dl>
                </li>`
              : html`<li key=${id} class="card"><code>${id}</code> <span class="muted">— ${error.message}</span></li>`,
          )}
        </ol>`}<//>`}
  </section>`;
}

function half(days) {
  return days ? `${fmtScore(days)} days` : "—";
}

export function MemoryPage({ id }) {
  const state = useLoad(() => core(`/console/memories/${encodeURIComponent(id)}`), [id]);
  return html`<${Loaded} state=${state} what="the memory">${(m) => html`
    <p class="crumbs"><a href="#/memories">Memories</a> ›</p>
    <h1>${m.payload.title || "Memory"}</h1>
    <div class="chips">
      <${StatusChip} status=${m.status} />
      ${m.pinned && html`<${Chip} tone="pinned">pinned<//>`}
    </div>
    <${Actions} m=${m} onChanged=${state.reload} />
    <blockquote class="memory-text">${m.text}</blockquote>
    ${m.summary && m.summary !== m.text && html`<p><strong>Summary:</strong> ${m.summary}</p>`}
    <dl class="facts">
      <div><dt>Type</dt><dd>${m.type}</dd></div>
      <div><dt>Kind</dt><dd>${m.kind}</dd></div>
      <div><dt>Confidence</dt><dd>${fmtScore(m.confidence)}</dd></div>
      <div><dt>Strength now</dt><dd>${fmtScore(m.strength)} <span class="muted">(${m.pinned ? "pinned: does not decay" : `halves every ${half(m.decay_half_life_days)} without recall`})</span></dd></div>
      <div><dt>Recalled</dt><dd>${m.recall_count} times${m.last_recalled_at ? `, last ${fmtTime(m.last_recalled_at)}` : ""}</dd></div>
      <div><dt>Scope</dt><dd>${m.scope.level}${m.scope.actor_id && html` · actor <a href=${href(["actors", m.scope.actor_id])}>${m.scope.actor_id}</a>`}${m.scope.team_id ? ` · team ${m.scope.team_id}` : ""}${m.scope.role_id ? ` · role ${m.scope.role_id}` : ""}</dd></div>
      <div><dt>Session</dt><dd>${m.payload.session_id || "—"}</dd></div>
      <div><dt>Tags</dt><dd>${m.tags.length ? m.tags.map((t) => html`<${Chip} key=${t}>${t}<//>`) : "—"}</dd></div>
      <div><dt>Entities</dt><dd>${m.entity_refs.length ? m.entity_refs.map((e) => html`<${Chip} key=${`${e.name}/${e.type}`}>${e.name} <span class="muted">${e.type}</span><//>`) : "—"}</dd></div>
      <div><dt>Observed</dt><dd>${fmtTime(m.observed_at)}</dd></div>
      <div><dt>Created</dt><dd>${fmtTime(m.created_at)}</dd></div>
      <div><dt>Updated</dt><dd>${fmtTime(m.updated_at)}</dd></div>
      <div><dt>Memory id</dt><dd><code>${m.memory_id}</code></dd></div>
    </dl>
    <section aria-labelledby="history-h">
      <h2 id="history-h">History</h2>
      <ul>
        <li>In effect from ${fmtTime(m.effective_from || m.observed_at)}${m.effective_to ? html` to ${fmtTime(m.effective_to)}` : " on"}.</li>
        ${m.status === "superseded" && html`<li>Superseded: a newer memory of the same actor says otherwise about the same thing.</li>`}
        ${m.status === "archived" && html`<li>Archived by a user: out of search, kept here.</li>`}
        ${m.source_event_ids.length > 1 && html`<li>Merged: ${m.source_event_ids.length} events said the same, each one reinforcing it.</li>`}
      </ul>
    </section>
    <${Sources} ids=${m.source_event_ids} />
  `}<//>`;
}
