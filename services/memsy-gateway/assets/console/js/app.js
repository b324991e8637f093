// The console's shell: sign-in, the navigation and the view of the route.

import { render } from "../vendor/preact.mjs";
import { useEffect, useState } from "../vendor/hooks.mjs";
import { can, session, signIn, signOut } from "./api.js";
import { ActorPage, ActorsView } from "./actors.js";
import { EventPage, EventsView } from "./events.js";
import { HierarchyView } from "./hierarchy.js";
import { KeysView } from "./keys.js";
import { MemoriesView } from "./memories.js";
import { MemoryPage } from "./memory.js";
import { StatsView } from "./stats.js";
import { html, parseHash } from "./ui.js";
import { UsageView } from "./usage.js";

// [route, label, whether the key may see it]
const NAV = [
  ["memories", "Memories", () => true],
  ["stats", "Stats", () => true],
  ["actors", "Actors", () => true],
  ["events", "Events", () => true],
  ["hierarchy", "Hierarchy", () => can("admin")],
  ["keys", "Keys", () => can("admin")],
  ["usage", "Usage", () => can("admin")],
];

function SignIn({ message, onSignedIn }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(message || null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await signIn(k);
      onSignedIn();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>memsy console</h1>
    <p>Sign in with an API key of your org (<code>memsy keys create</code> mints one). It is kept in this tab only and sent to this server alone.</p>
    <form onSubmit=${submit} aria-describedby=${error ? "signin-error" : undefined}>
      <label for="api-key">API key</label>
      <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="msy_…"
        value=${key} onInput=${(e) => setKey(e.target.value)} aria-invalid=${error ? "true" : "false"} />
      <button type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
    </form>
    ${error && html`<div id="signin-error" class="error" role="alert">${error}</div>`}
  </main>`;
}

// A view that needs the admin scope, or why this key cannot see it.
function adminOnly(title, Component) {
  if (can("admin")) return html`<${Component} />`;
  return html`<h1>${title}</h1><p role="alert">This view needs an API key with the admin scope; this key has ${session.me.scopes.join(", ")}.</p>`;
}

function View({ route }) {
  const [name, id] = route.parts;
  const q = route.query;
  switch (name || "memories") {
    case "memories":
      return id ? html`<${MemoryPage} id=${id} />` : html`<${MemoriesView} query=${q} />`;
    case "stats":
      return html`<${StatsView} />`;
    case "actors":
      return id ? html`<${ActorPage} id=${id} query=${q} />` : html`<${ActorsView} query=${q} />`;
    case "events":
      return id ? html`<${EventPage} id=${id} />` : html`<${EventsView} query=${q} />`;
    case "hierarchy":
      return adminOnly("Hierarchy", HierarchyView);
    case "keys":
      return adminOnly("API keys", KeysView);
    case "usage":
      return adminOnly("Usage", UsageView);
    default:
      return html`<h1 tabindex="-1">Not found</h1><p>There is no view <code>${name}</code>. <a href="#/memories">Go to the memories.</a></p>`;
  }
}

function Shell({ route, onSignOut }) {
  const me = session.me;
  const current = route.parts[0] || "memories";
  const scopes = me.scopes.join(", ");
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">memsy</span>
      <nav aria-label="Views">
        <ul>
          ${NAV.filter(([, , allowed]) => allowed()).map(
            ([r, label]) => html`<li key=${r}><a href="#/${r}" aria-current=${current === r ? "page" : undefined}>${label}</a></li>`,
          )}
        </ul>
      </nav>
      <div class="who">
        <span title="org">${me.org_id}</span>
        <span class="muted" data-testid="key-scopes">${me.key_name || me.key_id} · ${scopes}${can("write") ? "" : " (read-only)"}</span>
        <button type="button" class="link" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">
      <${View} route=${route} />
    </main>
  </div>`;
}

function App() {
  const [route, setRoute] = useState(parseHash());
  const [state, setState] = useState(session.key ? "checking" : "out");
  const [message, setMessage] = useState(null);

  useEffect(() => {
    const onHash = () => setRoute(parseHash());
    const onIn = () => {
      setMessage(null);
      setState("in");
    };
    window.addEventListener("hashchange", onHash);
    // The address may have changed between the first render and now.
    onHash();
    session.onRefused = (err) => {
      signOut();
      setMessage(`The server refused this API key (${err.message}). Sign in again.`);
      setState("out");
    };
    if (session.key) {
      // A reload keeps the key of the tab: check it again.
      signIn(session.key).then(onIn, (err) => {
        signOut();
        setMessage(err.message);
        setState("out");
      });
    }
    return () => {
      window.removeEventListener("hashchange", onHash);
    };
  }, []);

  // A new view: its heading takes the focus, so that keyboard and screen
  // reader users start there.
  useEffect(() => {
    const h1 = document.querySelector("main h1");
    if (h1 && state === "in") {
      h1.setAttribute("tabindex", "-1");
      h1.focus({ preventScroll: false });
    }
    document.title = `${route.parts[0] || "memories"} · memsy console`;
  }, [route.parts.join("/"), state]);

  if (state === "checking") return html`<p class="muted" role="status">Checking the API key…</p>`;
  if (state === "out") {
    return html`<${SignIn} message=${message} onSignedIn=${() => {
      setMessage(null);
      setState("in");
    }} />`;
  }
  return html`<${Shell} route=${route} onSignOut=${() => {
    signOut();
    setState("out");
  }} />`;
}

render(html`<${App} />`, document.getElementById("app"));
