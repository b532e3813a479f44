// Talking to the dashboard's JSON API (docs/api.md): every request is bounded in time, every
// state-changing one carries the session's CSRF token, and an expired session sends the user
// back to the login form instead of showing a broken page.

let csrfToken = null;
let unauthorized = () => {};

export function setCsrf(token) {
  csrfToken = token || null;
}

// Called on a 401 from anything but the login itself.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// api('GET', '/api/status') -> the parsed JSON answer; throws ApiError with the server's
// {"error": ...} text (status 0: no answer, e.g. a timeout).
export async function api(method, path, body, {timeout = 30000, signal} = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  if (signal) signal.addEventListener('abort', () => controller.abort(), {once: true});
  const headers = {Accept: 'application/json'};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
    });
  } catch (e) {
    if (signal && signal.aborted) throw e;
    throw new ApiError(0, controller.signal.aborted ? `no answer within ${timeout / 1000} s`
                                                    : `the dashboard cannot be reached (${e.message})`);
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    const message = parsed && typeof parsed === 'object' && parsed.error ? parsed.error
                                                                          : `HTTP ${response.status}`;
    if (response.status === 401 && path !== '/api/login') unauthorized();
    throw new ApiError(response.status, message, parsed);
  }
  return parsed;
}

// Sends a file as the raw request body (the firmware bundle, a settings backup): the browser
// streams it, the server writes it to a file (docs/web.md, "Uploads"). Answers as api() does.
export async function upload(path, file, {timeout = 600000} = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const headers = {Accept: 'application/json', 'Content-Type': 'application/octet-stream'};
  if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {method: 'POST', headers, body: file, credentials: 'same-origin',
                                  cache: 'no-store', signal: controller.signal});
  } catch (e) {
    throw new ApiError(0, controller.signal.aborted ? `no answer within ${timeout / 1000} s`
                                                    : `the dashboard cannot be reached (${e.message})`);
  } finally {
    clearTimeout(timer);
  }
  let parsed = null;
  try {
    parsed = JSON.parse(await response.text());
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    if (response.status === 401) unauthorized();
    throw new ApiError(response.status, parsed && parsed.error ? parsed.error : `HTTP ${response.status}`,
                       parsed);
  }
  return parsed;
}

export const get = (path, options) => api('GET', path, undefined, options);
export const post = (path, body, options) => api('POST', path, body ?? {}, options);
export const put = (path, body, options) => api('PUT', path, body ?? {}, options);
export const del = (path, options) => api('DELETE', path, undefined, options);

// "/api/leases" + {q: 'x', state: ''} -> "/api/leases?q=x" (empty values left out).
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
