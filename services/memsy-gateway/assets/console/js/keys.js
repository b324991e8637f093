// API keys (admin scope): the org's keys, a new key shown once, revoking.

import { useState } from "../vendor/hooks.mjs";
import { control, session } from "./api.js";
import { Chip, ErrorBox, Loaded, fmtTime, html, useLoad } from "./ui.js";

const SCOPES = [
  ["read", "read: search and the console's views"],
  ["write", "write: ingest, pin, archive and delete memories"],
  ["admin", "admin: keys, usage and the hierarchy (includes read and write)"],
];

function NewKey({ created, onDone }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.raw_key);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return html`<section class="new-key" role="status" aria-labelledby="newkey-h">
    <h2 id="newkey-h">Key “${created.name}” created</h2>
    <p>Copy it now: memsy keeps only its hash, so it is shown this once.</p>
    <p><code class="raw-key" data-testid="raw-key">${created.raw_key}</code></p>
    <div class="row">
      <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
      <button type="button" onClick=${onDone}>Done</button>
    </div>
  </section>`;
}

function CreateForm({ onCreated }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState({ read: true, write: true, admin: false });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const chosen = Object.keys(scopes).filter((s) => scopes[s]);
      const created = await control("/keys", { method: "POST", body: { name, scopes: chosen } });
      setName("");
      onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="stack" onSubmit=${submit} aria-labelledby="create-h">
    <h2 id="create-h">Create a key</h2>
    <div class="field">
      <label for="key-name">Name</label>
      <input id="key-name" required maxlength="200" value=${name} onInput=${(e) => setName(e.target.value)} />
    </div>
    <fieldset>
      <legend>Scopes</legend>
      ${SCOPES.map(
        ([s, label]) => html`<label key=${s} class="check">
          <input type="checkbox" name="scope" value=${s} checked=${scopes[s]} onChange=${(e) => setScopes({ ...scopes, [s]: e.target.checked })} />
          ${label}
        </label>`,
      )}
    </fieldset>
    <button type="submit" disabled=${busy}>Create key</button>
    <${ErrorBox} error=${error} />
  </form>`;
}

export function KeysView() {
  const state = useLoad(() => control("/keys"), []);
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const revoke = async (k) => {
    if (!window.confirm(`Revoke the key “${k.name}” (${k.prefix}…)? Programs using it are refused from now on.`)) return;
    setError(null);
    try {
      await control(`/keys/${encodeURIComponent(k.key_id)}`, { method: "DELETE" });
      state.reload();
    } catch (err) {
      setError(err);
    }
  };
  return html`<h1>API keys</h1>
    ${created && html`<${NewKey} created=${created} onDone=${() => setCreated(null)} />`}
    <${ErrorBox} error=${error} />
    <${Loaded} state=${state} what="keys">${(data) => html`
      <p>${data.active_count} of at most ${data.max_keys} live keys.</p>
      <div class="table-wrap"><table class="list">
        <caption class="sr-only">API keys</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          ${data.keys.map(
            (k) => html`<tr key=${k.key_id} data-key-id=${k.key_id}>
              <th scope="row">${k.name}${k.is_active ? "" : html` <${Chip} tone="archived">expired<//>`}</th>
              <td><code>${k.prefix}…</code></td>
              <td>${k.scopes.join(", ")}</td>
              <td>${fmtTime(k.created_at)}</td>
              <td>${fmtTime(k.last_used_at)}</td>
              <td>${k.key_id === session.me.key_id
                ? html`<span class="muted">this key</span>`
                : html`<button type="button" class="danger" aria-label=${`Revoke ${k.name}`} onClick=${() => revoke(k)}>Revoke</button>`}</td>
            </tr>`,
          )}
        </tbody>
      </table></div>
    `}<//>
    <${CreateForm} onCreated=${(c) => {
      setCreated(c);
      state.reload();
    }} />`;
}
