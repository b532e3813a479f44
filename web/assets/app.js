// The dashboard's shell: login, session, hash router, the live event stream (/api/events), the
// header, the pending-apply banner, toasts and dialogs. Each page is a module with
// mount(main, ctx) -> {unmount(), tick?(data), config?(event)}.
import {h, replace, fmtDuration} from './dom.js';
import {api, get, post, setCsrf, onUnauthorized, ApiError} from './net.js';
import * as overview from './page-overview.js';
import * as leases from './page-leases.js';
import * as teps from './page-teps.js';
import * as config from './page-config.js';
import * as logs from './page-logs.js';
import * as firmware from './page-firmware.js';
import * as users from './page-users.js';

const routes = {
  overview: {title: 'Overview', page: overview},
  leases: {title: 'Leases', page: leases},
  teps: {title: 'TEPs', page: teps},
  config: {title: 'Config', page: config},
  logs: {title: 'Logs', page: logs},
  firmware: {title: 'Firmware', page: firmware},
  users: {title: 'Users', page: users, admin: true},
};

const $ = (id) => document.getElementById(id);

const state = {
  session: null,   // {user, role, csrf, idle_timeout}
  hostname: '',
  current: null,   // {name, instance}
  events: null,    // EventSource
  eventsRetry: null,
  lastTick: null,
  pending: null,   // {revision, endAt (ms)}
};

// --- A tiny event bus: pages and the shell listen to ticks and config changes.
const listeners = new Map();
const bus = {
  on(name, fn) {
    if (!listeners.has(name)) listeners.set(name, new Set());
    listeners.get(name).add(fn);
    return () => listeners.get(name).delete(fn);
  },
  emit(name, data) {
    for (const fn of listeners.get(name) || []) {
      try {
        fn(data);
      } catch (e) {
        console.error(e);
      }
    }
  },
};

// --- Toasts: short confirmations and errors, announced to screen readers.
function toast(message, kind = 'info', ms = 5000) {
  const el = h('div', {class: `toast ${kind}`, role: kind === 'bad' ? 'alert' : 'status',
                       'data-test': 'toast', 'data-kind': kind},
               h('span', null, message),
               h('button', {type: 'button', class: 'toast-close', 'aria-label': 'Dismiss',
                            onclick: () => el.remove()}, '×'));
  $('toasts').appendChild(el);
  setTimeout(() => el.remove(), kind === 'bad' ? ms * 2 : ms);
}

// --- Dialogs on the one <dialog>: resolve with the chosen action's value, null on cancel.
let dialogResolve = null;
function openDialog({title, body, actions, test, wide}) {
  const dlg = $('dialog');
  if (dlg.open) closeDialog(null);
  const form = h('form', {class: 'dialog-form', method: 'dialog', 'data-test': test || 'dialog-form'});
  const buttons = (actions || [{label: 'Close', value: null, test: 'dialog-close'}]).map((a) =>
    h('button', {type: a.submit ? 'submit' : 'button', class: `btn ${a.kind || ''}`,
                 'data-test': a.test, value: a.value ?? '',
                 onclick: a.submit ? undefined : () => closeDialog(a.value ?? null)}, a.label));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const submit = (actions || []).find((a) => a.submit);
    if (!submit) return;
    const value = typeof submit.value === 'function' ? submit.value(form) : submit.value;
    if (value === undefined) return;  // the action's own validation said no
    closeDialog(value);
  });
  replace(form,
          h('header', {class: 'dialog-head'}, h('h2', {id: 'dialog-title'}, title),
            h('button', {type: 'button', class: 'toast-close', 'aria-label': 'Close',
                         onclick: () => closeDialog(null)}, '×')),
          h('div', {class: 'dialog-body'}, body),
          h('footer', {class: 'dialog-actions'}, buttons));
  dlg.classList.toggle('wide', !!wide);
  dlg.setAttribute('aria-labelledby', 'dialog-title');
  replace(dlg, form);
  dlg.showModal();
  const first = form.querySelector('input, textarea, select');
  if (first) first.focus();
  return new Promise((resolve) => { dialogResolve = resolve; });
}

function closeDialog(value) {
  const dlg = $('dialog');
  if (dlg.open) dlg.close();
  const resolve = dialogResolve;
  dialogResolve = null;
  if (resolve) resolve(value);
}

function confirmDialog(title, text, {confirmLabel = 'OK', danger = false, test} = {}) {
  return openDialog({
    title,
    body: typeof text === 'string' ? h('p', null, text) : text,
    test,
    actions: [{label: 'Cancel', value: false, test: 'dialog-cancel'},
              {label: confirmLabel, value: true, kind: danger ? 'danger' : 'primary',
               test: 'dialog-confirm', submit: true}],
  }).then((v) => v === true);
}

// --- Session.
function isAdmin() {
  return state.session && state.session.role === 'admin';
}

function showLogin(message) {
  stopEvents();
  unmountPage();
  setCsrf(null);
  state.session = null;
  $('app-view').hidden = true;
  $('login-view').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  document.title = 'Sign in – DSTM appliance';
  setTimeout(() => ($('login-user').value ? $('login-password') : $('login-user')).focus(), 0);
}

function showApp(session) {
  state.session = session;
  setCsrf(session.csrf);
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('top-user').textContent = `${session.user} (${session.role})`;
  for (const el of document.querySelectorAll('[data-admin-only]')) el.hidden = !isAdmin();
  document.body.dataset.role = session.role;
  startEvents();
  loadHeader();
  loadPending();
  route();
}

async function loadHeader() {
  try {
    const s = await get('/api/status');
    state.hostname = s.hostname || '';
    $('top-host').textContent = state.hostname;
    $('nav-version').textContent = `${s.version || ''}${s.build ? ` · ${s.build}` : ''}`;
    updateTitle();
  } catch {
    // The overview shows the error; the header stays plain.
  }
}

async function loadPending() {
  try {
    const c = await get('/api/config');
    setPending(c.pending);
  } catch {
    // Not fatal: the next tick carries the pending state too.
  }
}

onUnauthorized(() => {
  if (state.session) showLogin('Your session has ended. Please sign in again.');
});

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('login-user').value.trim();
  const password = $('login-password').value;
  const err = $('login-error');
  if (!user || !password) {
    err.hidden = false;
    err.textContent = 'Enter the user name and the password.';
    return;
  }
  const button = e.submitter || e.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const session = await post('/api/login', {user, password});
    $('login-password').value = '';
    err.hidden = true;
    showApp(session);
  } catch (ex) {
    err.hidden = false;
    err.textContent = ex.status === 401 || ex.status === 403 ? 'Wrong user name or password.'
                    : ex.status === 429 ? `Too many failed attempts: ${ex.message}`
                    : ex.message;
    $('login-password').select();
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  try {
    await post('/api/logout');
  } catch {
    // Leaving anyway: the session is dropped on our side.
  }
  showLogin('');
});

// --- Live updates over Server-Sent Events. One stream per tab (the server allows 4 per session).
function setLive(on, text) {
  const el = $('top-live');
  el.classList.toggle('on', on);
  el.querySelector('.live-text').textContent = text;
  el.dataset.state = on ? 'live' : 'offline';
}

function startEvents() {
  stopEvents();
  const es = new EventSource('/api/events');
  state.events = es;
  setLive(false, 'connecting');
  es.addEventListener('open', () => setLive(true, 'live'));
  es.addEventListener('tick', (e) => {
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    state.lastTick = data;
    setLive(true, 'live');
    updateDaemonsPill(data.daemons);
    if ('pending' in data) setPending(data.pending);
    bus.emit('tick', data);
    if (state.current && state.current.instance.tick) state.current.instance.tick(data);
  });
  es.addEventListener('config', (e) => {
    let data = {};
    try {
      data = JSON.parse(e.data);
    } catch {
      // An event without a body still means: reload the config state.
    }
    loadPending();
    bus.emit('config', data);
    if (state.current && state.current.instance.config) state.current.instance.config(data);
  });
  es.addEventListener('error', () => {
    setLive(false, 'offline');
    if (es.readyState !== EventSource.CLOSED) return;  // the browser reconnects by itself
    // Closed for good (a non-200 answer): find out whether the session is still there.
    clearTimeout(state.eventsRetry);
    state.eventsRetry = setTimeout(async () => {
      if (state.events !== es) return;
      try {
        await get('/api/session');
        startEvents();
      } catch (ex) {
        if (ex instanceof ApiError && ex.status !== 401 && state.events === es) {
          state.eventsRetry = setTimeout(() => state.events === es && startEvents(), 5000);
        }
      }
    }, 2000);
  });
}

function stopEvents() {
  clearTimeout(state.eventsRetry);
  if (state.events) state.events.close();
  state.events = null;
  setLive(false, 'offline');
}

function updateDaemonsPill(daemons) {
  const pill = $('top-daemons');
  if (!Array.isArray(daemons) || daemons.length === 0) {
    pill.hidden = true;
    return;
  }
  const down = daemons.filter((d) => !d.up);
  pill.hidden = false;
  pill.className = `daemons-pill ${down.length ? 'bad' : 'ok'}`;
  pill.textContent = down.length ? `${down.map((d) => d.name).join(', ')} down`
                                 : `${daemons.length}/${daemons.length} daemons up`;
  pill.title = daemons.map((d) => `${d.name}: ${d.up ? 'up' : 'down'}`).join('\n');
}

// --- The pending apply: a banner on every page with a countdown, Confirm and Roll back now.
function setPending(pending) {
  const was = state.pending;
  if (!pending) {
    state.pending = null;
  } else {
    const remaining = Number(pending.remaining);
    const endAt = Number.isFinite(remaining) ? Date.now() + remaining * 1000
                                             : Number(pending.deadline) * 1000;
    state.pending = {revision: pending.revision, endAt};
  }
  renderPending();
  bus.emit('pending', state.pending);
  // A window that ended (confirmed elsewhere, rolled back by the timer) changed the running
  // config even when no "config" event reached this tab.
  if (was && !state.pending && state.current && state.current.instance.config) {
    state.current.instance.config({event: 'pending-ended'});
  }
}

function renderPending() {
  const banner = $('pending-banner');
  const p = state.pending;
  banner.hidden = !p;
  if (!p) return;
  const left = Math.max(0, Math.ceil((p.endAt - Date.now()) / 1000));
  $('pending-revision').textContent = String(p.revision ?? '');
  const remaining = $('pending-remaining');
  remaining.textContent = left > 0 ? fmtDuration(left) : 'a moment (rolling back)';
  remaining.dataset.seconds = String(left);
}
setInterval(renderPending, 1000);

async function pendingAction(path, done) {
  for (const b of document.querySelectorAll('#pending-banner button')) b.disabled = true;
  try {
    await post(path, {}, {timeout: 60000});
    toast(done, 'ok');
    await loadPending();
    bus.emit('config', {});
    if (state.current && state.current.instance.config) state.current.instance.config({});
  } catch (e) {
    toast(e.message, 'bad');
  } finally {
    for (const b of document.querySelectorAll('#pending-banner button')) b.disabled = false;
  }
}
$('pending-confirm').addEventListener('click', () =>
  pendingAction('/api/config/confirm', 'Configuration confirmed.'));
$('pending-rollback').addEventListener('click', async () => {
  if (await confirmDialog('Roll back now?', 'The previous configuration is restored and the ' +
                          'daemons whose section changed are reloaded.',
                          {confirmLabel: 'Roll back', danger: true}))
    pendingAction('/api/config/rollback', 'Configuration rolled back.');
});

// --- Router.
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, query] = raw.split('?');
  return {name: name || 'overview', params: new URLSearchParams(query || '')};
}

function unmountPage() {
  if (state.current) {
    try {
      state.current.instance.unmount?.();
    } catch (e) {
      console.error(e);
    }
  }
  state.current = null;
}

function updateTitle() {
  const r = state.current && routes[state.current.name];
  document.title = `${r ? `${r.title} – ` : ''}DSTM appliance${state.hostname ? ` (${state.hostname})` : ''}`;
}

function route() {
  if (!state.session) return;
  let {name, params} = parseHash();
  if (!routes[name] || (routes[name].admin && !isAdmin())) {
    name = 'overview';
    history.replaceState(null, '', '#/overview');
  }
  unmountPage();
  for (const a of document.querySelectorAll('#nav a[data-route]')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.classList.remove('nav-open');
  $('nav-toggle').setAttribute('aria-expanded', 'false');
  const main = $('main');
  replace(main);
  main.dataset.page = name;
  const ctx = {
    session: state.session,
    isAdmin: isAdmin(),
    params,
    // Pages keep their filters in the address (bookmarkable) without a new history entry.
    setParams(p) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(p)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
      const s = q.toString();
      history.replaceState(null, '', `#/${name}${s ? `?${s}` : ''}`);
    },
    api, toast, openDialog, closeDialog, confirmDialog, bus,
    lastTick: () => state.lastTick,
    pending: () => state.pending,
    setPending,
  };
  const instance = routes[name].page.mount(main, ctx) || {};
  state.current = {name, instance};
  updateTitle();
}

window.addEventListener('hashchange', route);

$('nav-toggle').addEventListener('click', () => {
  const open = !document.body.classList.contains('nav-open');
  document.body.classList.toggle('nav-open', open);
  $('nav-toggle').setAttribute('aria-expanded', String(open));
});

// --- Start: an existing session (cookie) goes straight to the app.
(async () => {
  try {
    const session = await get('/api/session');
    showApp(session);
  } catch {
    showLogin('');
  }
})();
