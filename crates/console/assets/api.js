// The console's only way to the gateway: the same HTTP API as every client, same-origin, with
// the session cookie. State changes carry the session's CSRF token, which only a same-origin
// page can read (from GET /v1/whoami).

let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || (body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function send(method, path, body) {
  const headers = { accept: 'application/json' };
  // `same-origin`: the pages are served `Referrer-Policy: no-referrer`, under which a browser
  // sends `Origin: null` on a POST, which the gateway's CSRF check refuses. Requests here only
  // ever go to the gateway itself, so they may carry its origin.
  const init = { method, credentials: 'same-origin', headers, cache: 'no-store', referrerPolicy: 'same-origin' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    if (csrf) headers['x-csrf-token'] = csrf;
    init.body = JSON.stringify(body ?? {});
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: r.status, ok: r.ok, body: json, text, headers: r.headers };
}

/** Who is signed in, or null (no session). Keeps the session's CSRF token. */
export async function whoami() {
  const r = await send('GET', '/v1/whoami');
  if (r.status === 401) return null;
  if (!r.ok) throw new ApiError(r.status, r.body);
  csrf = r.body.csrf_token || null;
  return r.body;
}

export async function get(path) {
  return send('GET', path);
}

export async function post(path, body) {
  return send('POST', path, body);
}

/** The error of a failed answer, as one line for people. */
export function problem(r) {
  const e = r.body && r.body.error;
  if (e) return `${e.code}: ${e.message}`;
  return `HTTP ${r.status}`;
}
