// The hierarchy (admin scope): the org's record, its roles and teams, with
// the promotion prompts memsy generated for them; create, edit, regenerate.

import { useState } from "../vendor/hooks.mjs";
import { core } from "./api.js";
import { ErrorBox, Loaded, fmtTime, html, useLoad } from "./ui.js";

// [collection, the record's id field, singular]
const LEVELS = [
  ["orgs", "org_id", "org"],
  ["roles", "role_id", "role"],
  ["teams", "team_id", "team"],
];

function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

function Record({ r, path, idField, onChanged }) {
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState({ name: r.name, focus: r.focus, promotion_prompt: r.promotion_prompt || "" });
  const { busy, error, run } = useAction();
  const id = r[idField];
  const base = `/${path}/${encodeURIComponent(id)}`;
  const fid = `${path}-${id}`;
  const save = async (e) => {
    e.preventDefault();
    // Only what changed: an unchanged field is not sent back.
    const was = { name: r.name, focus: r.focus, promotion_prompt: r.promotion_prompt || "" };
    const body = Object.fromEntries(Object.entries(form).filter(([k, v]) => v !== was[k]));
    if (await run(() => core(base, { method: "PATCH", body }))) {
      setEditing(false);
      onChanged();
    }
  };
  const regenerate = async () => {
    if (await run(() => core(`${base}/regenerate-prompt`, { method: "POST", body: {} }))) onChanged();
  };
  if (editing) {
    return html`<li class="card"><form class="stack" onSubmit=${save}>
      <div class="field"><label for=${`${fid}-name`}>Name</label>
        <input id=${`${fid}-name`} value=${form.name} onInput=${(e) => setForm({ ...form, name: e.target.value })} /></div>
      <div class="field"><label for=${`${fid}-focus`}>Focus</label>
        <input id=${`${fid}-focus`} value=${form.focus} onInput=${(e) => setForm({ ...form, focus: e.target.value })} /></div>
      <div class="field"><label for=${`${fid}-prompt`}>Promotion prompt</label>
        <textarea id=${`${fid}-prompt`} rows="6" value=${form.promotion_prompt} onInput=${(e) => setForm({ ...form, promotion_prompt: e.target.value })}></textarea></div>
      <div class="row">
        <button type="submit" disabled=${busy}>Save</button>
        <button type="button" onClick=${() => setEditing(false)}>Cancel</button>
      </div>
      <${ErrorBox} error=${error} />
    </form></li>`;
  }
  return html`<li class="card">
    <h3>${r.name} <span class="muted">${id}</span></h3>
    <p><strong>Focus:</strong> ${r.focus}</p>
    <details>
      <summary>Promotion prompt</summary>
      <pre class="prompt">${r.promotion_prompt || "—"}</pre>
    </details>
    <p class="muted">Updated ${fmtTime(r.updated_at)}</p>
    <div class="row">
      <button type="button" onClick=${() => setEditing(true)}>Edit</button>
      <button type="button" disabled=${busy} onClick=${regenerate}>Regenerate prompt</button>
    </div>
    <${ErrorBox} error=${error} />
  </li>`;
}

function CreateForm({ path, singular, onChanged }) {
  const [form, setForm] = useState({ name: "", focus: "" });
  const { busy, error, run } = useAction();
  const submit = async (e) => {
    e.preventDefault();
    if (await run(() => core(`/${path}`, { method: "POST", body: form }))) {
      setForm({ name: "", focus: "" });
      onChanged();
    }
  };
  return html`<form class="filters" onSubmit=${submit} aria-label=${`New ${singular}`}>
    <div class="field"><label for=${`new-${path}-name`}>Name</label>
      <input id=${`new-${path}-name`} required value=${form.name} onInput=${(e) => setForm({ ...form, name: e.target.value })} /></div>
    <div class="field"><label for=${`new-${path}-focus`}>Focus</label>
      <input id=${`new-${path}-focus`} required value=${form.focus} onInput=${(e) => setForm({ ...form, focus: e.target.value })} /></div>
    <button type="submit" disabled=${busy}>Create ${singular}</button>
    <${ErrorBox} error=${error} />
  </form>`;
}

function Level({ path, idField, singular }) {
  const state = useLoad(() => core(`/${path}`), [path]);
  return html`<section aria-labelledby=${`${path}-h`}>
    <h2 id=${`${path}-h`}>${path[0].toUpperCase() + path.slice(1)}</h2>
    <${Loaded} state=${state} what=${path}>${(records) => html`
      ${records.length === 0
        ? html`<p class="muted">No ${singular} record yet.</p>`
        : html`<ul class="cards">${records.map((r) => html`<${Record} key=${r[idField]} r=${r} path=${path} idField=${idField} onChanged=${state.reload} />`)}</ul>`}
      ${(path !== "orgs" || records.length === 0) && html`<${CreateForm} path=${path} singular=${singular} onChanged=${state.reload} />`}
    `}<//>
  </section>`;
}

export function HierarchyView() {
  return html`<h1>Hierarchy</h1>
    <p>What memsy promotes from actors to their roles, teams and org follows each record's promotion prompt.</p>
    ${LEVELS.map(([path, idField, singular]) => html`<${Level} key=${path} path=${path} idField=${idField} singular=${singular} />`)}`;
}
