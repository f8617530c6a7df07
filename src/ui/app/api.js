// SPDX-License-Identifier: Apache-2.0
// The registry's APIs, as the signed-in user (the browser sends its session).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A repository name's path (its '/' kept), a tag's or digest's segment.
export function repoPath(name) {
  return String(name).split('/').map(encodeURIComponent).join('/');
}
export const seg = encodeURIComponent;

// Who the browser is signed in as (GET /ringport/v1/session), asked once
// at start; a change waits for it, to carry its CSRF token.
let session = null;
export function loadSession() {
  if (!session) session = call('/ringport/v1/session').catch(() => null);
  return session;
}

export async function signIn(username, password) {
  const r = await call('/ringport/v1/session', {
    method: 'POST', body: JSON.stringify({username, password}), type: 'application/json',
  });
  session = null; // asked again, whole (the sign-in's answer has the user and token only)
  return r;
}

export async function signOut() {
  await call('/ringport/v1/session', {method: 'DELETE'});
  session = null;
}

export async function call(path, {method = 'GET', params, signal, accept, body, type} = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  // X-Ringport-UI: a 401 then carries no challenge (the browser's own
  // password dialog), and the UI offers its sign-in instead.
  const headers = {'X-Ringport-UI': '1'};
  if (accept) headers.Accept = accept;
  if (type) headers['Content-Type'] = type;
  if (method !== 'GET' && method !== 'HEAD' && !(method === 'POST' && path === '/ringport/v1/session')) {
    const s = await loadSession();
    if (s && s.csrf) headers['X-Ringport-CSRF'] = s.csrf;
  }
  let r;
  try {
    r = await fetch(url, {method, signal, headers, body, credentials: 'same-origin'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'The registry cannot be reached.');
  }
  if (!r.ok) {
    let code = '';
    let message = r.statusText || `HTTP ${r.status}`;
    try {
      const j = await r.json();
      const e = j.errors && j.errors[0];
      if (e) {
        code = e.code || '';
        message = e.message || message;
        if (typeof e.detail === 'string' && e.detail) message += `: ${e.detail}`;
      }
    } catch {
      // not JSON: the status says it
    }
    throw new ApiError(r.status, code, message);
  }
  if (method === 'HEAD' || r.status === 204) return null;
  const got = r.headers.get('content-type') || '';
  return got.includes('json') ? r.json() : r.text();
}

export function admin(path, opts) {
  return call(`/ringport/v1/${path}`, opts);
}

// Every manifest type the UI can show.
export const manifestAccept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.artifact.manifest.v1+json',
].join(', ');
