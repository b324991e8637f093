// Calls to the memsy API with the signed-in key as the bearer. The key is
// kept in session storage: it lives as long as the tab, never on disk.

const STORAGE = "memsy.console.key";

export const session = {
  key: sessionStorage.getItem(STORAGE),
  // GET /api/me of the key: org_id, key_id, key_name, scopes, tier.
  me: null,
  // The rate-limit and plan headers of the last answer.
  limits: null,
  // Set by the app: called when the server refuses the key mid-session.
  onRefused: null,
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The API is served by the same gateway, one level up from /console/.
const CORE = "../v1";
const CONTROL = "../api";

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

function noteLimits(headers) {
  const get = (h) => headers.get(h);
  if (get("X-Plan") === null) return;
  session.limits = {
    plan: get("X-Plan"),
    rateLimit: get("X-RateLimit-Limit"),
    rateRemaining: get("X-RateLimit-Remaining"),
    rateReset: get("X-RateLimit-Reset"),
    at: new Date(),
  };
}

async function call(base, path, { method = "GET", body, key = session.key } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "unreachable", "The memsy server cannot be reached. Check that it is running, then try again.");
  }
  noteLimits(resp.headers);
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const d = data && data.detail;
    const message = (d && typeof d === "object" && d.message) || (typeof d === "string" && d) || `${resp.status} ${resp.statusText}`;
    const err = new ApiError(resp.status, d && d.error, message);
    if (resp.status === 401 && key === session.key && session.onRefused) session.onRefused(err);
    throw err;
  }
  return data;
}

export const core = (path, opts) => call(CORE, path, opts);
export const control = (path, opts) => call(CONTROL, path, opts);

// Whether the signed-in key has `scope` (admin includes read and write).
export function can(scope) {
  const scopes = (session.me && session.me.scopes) || [];
  return scopes.includes(scope) || scopes.includes("admin");
}

// Checks `key` with GET /api/me; keeps it for the tab when it is accepted.
export async function signIn(key) {
  let me;
  try {
    me = await control("/me", { key });
  } catch (e) {
    if (e.status === 401) {
      throw new ApiError(401, e.code, `This API key was refused: it is unknown, revoked or expired. (${e.message})`);
    }
    throw e;
  }
  session.key = key;
  session.me = me;
  sessionStorage.setItem(STORAGE, key);
  return me;
}

export function signOut() {
  session.key = null;
  session.me = null;
  session.limits = null;
  sessionStorage.removeItem(STORAGE);
}
