// The admin API as the page calls it: the session cookie goes along by itself; calls that
// change something carry the session's CSRF token. A 401 means the session ended.

let csrf = null;
let sessionEnded = () => {};

export function setCsrf(token) { csrf = token; }
export function onSessionEnd(f) { sessionEnded = f; }

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `the admin API answered ${status}`);
    this.status = status;
    this.code = body?.error?.code || 'http_' + status;
    this.fields = body?.error?.fields || {};
  }
}

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error: { message: 'the admin API cannot be reached', code: 'unreachable' } });
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    const e = new ApiError(res.status, data);
    if (res.status === 401 && !opts.quiet) sessionEnded(e);
    throw e;
  }
  return opts.withEtag ? { data, etag: res.headers.get('etag') } : data;
}

export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b = {}, o) => api('POST', p, b, o);
export const put = (p, b, o) => api('PUT', p, b, o);
export const patch = (p, b, o) => api('PATCH', p, b, o);
export const del = (p, o) => api('DELETE', p, undefined, o);

// A query string of the set values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, v);
  }
  const s = u.toString();
  return s ? '?' + s : '';
}

// Every page of a list (small lists only: tenants of a form, an app's keys).
export async function all(path, params = {}, max = 2000) {
  const out = [];
  let cursor;
  do {
    const page = await get(path + qs({ ...params, limit: 500, cursor }));
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}
