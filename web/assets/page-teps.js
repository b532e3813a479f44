// TEPs: one card per TEP with its state at the server and of its own daemon, binding table size,
// query rate and latency, traffic, drops by reason, top talkers, and the per-client bindings
// (bytes and packets both ways) searched on demand.
import {h, replace, badge, facts, table, emptyRow, field, fmtNumber, fmtBytes, fmtDuration,
        fmtMs, fmtClock, fmtTime, humanize, debounce, listOf} from './dom.js';
import {get, withQuery} from './net.js';

export function mount(main, ctx) {
  let teps = null;
  let error = null;
  let loading = false;
  const open = new Map();  // TEP name -> {search, box} of an expanded bindings panel
  const cards = h('div', {class: 'tep-cards', 'data-test': 'tep-cards'});
  const errorBox = h('div');
  const updated = h('span', {class: 'muted small', 'data-test': 'teps-updated'});

  replace(main,
          h('div', {class: 'page-head'}, h('h1', null, 'TEPs'), h('span', {class: 'spacer'}), updated,
            h('button', {type: 'button', class: 'btn small', 'data-test': 'teps-refresh', onclick: () => load()}, 'Refresh')),
          errorBox, cards);

  async function load() {
    if (loading) return;
    loading = true;
    try {
      teps = listOf(await get('/api/teps', {timeout: 15000}), 'teps');
      error = null;
      updated.textContent = `updated ${fmtClock(new Date())}`;
    } catch (e) {
      error = e;
    } finally {
      loading = false;
    }
    render();
  }

  function render() {
    replace(errorBox, error ? h('div', {class: 'notice bad', role: 'alert'}, `The TEPs could not be read: ${error.message}`) : null);
    if (!teps) return;
    if (!teps.length) {
      replace(cards, h('p', {class: 'muted'}, 'The config document has no TEP.'));
      return;
    }
    // Keep an expanded bindings panel (and its search text) across refreshes.
    replace(cards, teps.map(tepCard));
  }

  function counter(st, name) {
    const c = st?.counters?.[name];
    const f = st?.fast_path?.[name];
    if (c === undefined && f === undefined) return null;
    return Number(c || 0) + Number(f || 0);
  }

  function tepCard(t) {
    const st = t.status || null;
    const srv = t.server || null;
    const session = st?.server || {};
    const lat = session.query_latency || {};
    const badges = h('div', {class: 'chips'},
      t.up === null || t.up === undefined ? badge('on another box', 'muted', {'data-test': 'tep-daemon-state'})
        : t.up ? badge('daemon up', 'ok', {'data-test': 'tep-daemon-state'})
        : badge('daemon down', 'bad', {'data-test': 'tep-daemon-state'}),
      srv ? (srv.alive ? badge('alive at the server', 'ok') : badge('not alive at the server', 'bad')) : badge('not in dstm-server', 'muted'),
      st ? (session.connected ? badge('session up', 'ok') : badge('no server session', 'warn')) : null,
      st?.backend ? badge(`${st.backend} path`, 'info') : null);

    const main = st ? facts([
      ['Tunnel end point', h('span', {class: 'mono'}, st.ipv6)],
      ['IPv4', h('span', {class: 'mono'}, st.ipv4)],
      ['Keepalive', st.keepalive ? h('span', {class: 'mono'}, st.keepalive) : '–'],
      ['Bindings', fmtNumber(st.bindings), 'tep-bindings'],
      ['Negative cache', fmtNumber(st.negative)],
      ['Queries/s', Number.isFinite(Number(session.query_rate)) ? Number(session.query_rate).toFixed(2) : '–', 'tep-query-rate'],
      ['Query latency', lat.p50_ms === undefined ? 'no samples'
        : `p50 ${fmtMs(lat.p50_ms)} · p99 ${fmtMs(lat.p99_ms)} · max ${fmtMs(lat.max_ms)}`, 'tep-query-latency'],
      ['Waiting for answers', `${fmtNumber(st.queue?.packets)} packets, ${fmtNumber(st.queue?.addresses)} addresses`],
      ['Uptime', fmtDuration(st.uptime)],
      ['Server session', `${session.address ?? ''} ${session.transport ?? ''} · ${fmtNumber(session.connects)} connects · ` +
                         `${fmtNumber(session.heartbeats)} heartbeats`],
      session.last_error ? ['Last error', h('span', {class: 'text-bad'}, session.last_error)] : null,
    ]) : t.up === null || t.up === undefined
      ? h('p', {class: 'muted'}, 'This TEP runs on another box: only the DSTM server\'s view is shown.')
      : h('div', {class: 'notice bad'}, `The TEP daemon does not answer${t.error ? `: ${t.error}` : ''}.`);

    const traffic = st ? table([{label: ''}, {label: 'Packets', cls: 'num'}, {label: 'Bytes', cls: 'num'}], [
      h('tr', null, h('th', {scope: 'row'}, 'From clients (decapsulated)'),
        h('td', {class: 'num'}, fmtNumber(counter(st, 'decapsulated'))),
        h('td', {class: 'num'}, fmtBytes(counter(st, 'decapsulated_bytes')))),
      h('tr', null, h('th', {scope: 'row'}, 'To clients (encapsulated)'),
        h('td', {class: 'num'}, fmtNumber(counter(st, 'encapsulated'))),
        h('td', {class: 'num'}, fmtBytes(counter(st, 'encapsulated_bytes')))),
    ]) : null;

    const server = srv ? facts([
      ['Leases on this TEP', fmtNumber(srv.leases)],
      ['TSP sessions', fmtNumber(srv.sessions)],
      ['Last heard', srv.last_heard !== undefined && srv.last_heard !== null
        ? (typeof srv.last_heard === 'number' && srv.last_heard > 1e9 ? fmtTime(srv.last_heard) : `${srv.last_heard}`) : '–'],
      ['Weight', srv.weight ?? '–'],
      ['Pending withdrawals', fmtNumber(srv.pending_withdrawals)],
    ]) : null;

    const drops = Object.entries(t.drops || {}).filter(([, n]) => Number(n) > 0).sort((a, b) => b[1] - a[1]);
    const dropsTable = table([{label: 'Reason'}, {label: 'Packets', cls: 'num'}],
      drops.length ? drops.map(([reason, n]) => h('tr', {'data-test': 'drop-row', 'data-reason': reason},
        h('td', {title: reason}, humanize(reason)), h('td', {class: 'num'}, fmtNumber(n))))
        : [emptyRow(2, 'No drops.')], {'data-test': 'tep-drops'});

    const talkers = listOf(t.top_talkers, 'bindings');
    const talkersTable = bindingsTable(talkers, 'No traffic yet.', 'tep-top-talkers');

    const panel = h('div', {class: 'bindings-panel'});
    const state = open.get(t.name);
    const toggle = h('button', {type: 'button', class: 'btn small', 'aria-expanded': String(!!state),
                                'data-test': 'tep-bindings-toggle',
                                onclick: () => {
                                  if (open.has(t.name)) open.delete(t.name);
                                  else open.set(t.name, {search: ''});
                                  render();
                                }}, state ? 'Hide all clients' : 'All clients…');
    if (state) fillBindings(t.name, panel, state);

    return h('section', {class: 'card tep-card', 'data-test': 'tep-card', 'data-tep': t.name},
      h('header', {class: 'card-head'}, h('h2', null, t.name), badges),
      h('div', {class: 'card-body tep-grid'},
        h('div', null, h('h3', null, 'State'), main),
        h('div', null,
          traffic ? [h('h3', null, 'Traffic'), traffic] : null,
          server ? [h('h3', null, 'At the DSTM server'), server] : null),
        h('div', null, h('h3', null, 'Drops by reason'), dropsTable)),
      h('div', {class: 'card-body'},
        h('div', {class: 'subhead'}, h('h3', null, 'Top talkers'), toggle),
        talkersTable, panel));
  }

  function bindingsTable(list, empty, test) {
    return table([{label: 'IPv4'}, {label: 'Client IPv6'}, {label: 'Origin'},
                  {label: 'From client', cls: 'num'}, {label: 'To client', cls: 'num'},
                  {label: 'Packets from / to', cls: 'num'}, {label: 'Expires in', cls: 'num'}],
      list.length ? list.map((b) => h('tr', {'data-test': 'binding-row', 'data-ipv4': b.ipv4},
        h('td', {class: 'mono'}, b.ipv4), h('td', {class: 'mono'}, b.client),
        h('td', null, b.origin || '–'),
        h('td', {class: 'num'}, fmtBytes(b.bytes_from_client)), h('td', {class: 'num'}, fmtBytes(b.bytes_to_client)),
        h('td', {class: 'num'}, `${fmtNumber(b.packets_from_client)} / ${fmtNumber(b.packets_to_client)}`),
        h('td', {class: 'num'}, fmtDuration(b.expires_in))))
        : [emptyRow(7, empty)], {'data-test': test});
  }

  async function fillBindings(name, panel, state) {
    const input = h('input', {type: 'search', value: state.search, placeholder: 'IPv4 or client IPv6',
                              'data-test': 'tep-bindings-search'});
    const box = h('div', null, h('p', {class: 'muted'}, 'Loading…'));
    const run = async () => {
      state.search = input.value.trim();
      try {
        const r = await get(withQuery(`/api/teps/${encodeURIComponent(name)}/bindings`,
                                      {search: state.search, limit: 500}));
        const list = listOf(r, 'bindings');
        replace(box, h('p', {class: 'muted small'}, `${fmtNumber(r.total ?? list.length)} binding(s)` +
                                                    `${(r.total ?? 0) > list.length ? `, first ${list.length} shown` : ''}`),
                bindingsTable(list, 'No binding matches.', 'tep-bindings'));
      } catch (e) {
        replace(box, h('div', {class: 'notice bad'}, e.message));
      }
    };
    input.addEventListener('input', debounce(run, 300));
    replace(panel, h('div', {class: 'toolbar'}, h('div', {class: 'grow'}, field(`Clients of ${name}`, input))), box);
    run();
  }

  load();
  const timer = setInterval(() => {
    // A search the operator is typing in would be rebuilt under the cursor.
    if (!main.contains(document.activeElement) || document.activeElement === document.body) load();
    else if (!document.activeElement.matches('input')) load();
  }, 5000);
  return {unmount() { clearInterval(timer); }};
}
