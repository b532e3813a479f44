// Leases: dstm-server's lease table through /api/leases, searched, filtered, sorted and paged on
// the server; release and extend for admins. Filters live in the address (#/leases?q=...).
import {h, replace, field, select, badge, table, emptyRow, fmtTime, fmtDuration, fmtNumber,
        fmtClock, debounce, listOf} from './dom.js';
import {get, post, withQuery} from './net.js';

const kPageSizes = [25, 50, 100, 250];

export function mount(main, ctx) {
  const p = ctx.params;
  const q = {
    q: p.get('q') || '',
    state: p.get('state') || '',
    tep: p.get('tep') || '',
    sort: p.get('sort') === 'expires_at' ? 'expires_at' : 'ipv4',
    order: p.get('order') === 'desc' ? 'desc' : 'asc',
    offset: Math.max(0, Number(p.get('offset')) || 0),
    limit: kPageSizes.includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 50,
  };
  let answer = null;
  let error = null;
  let seq = 0;
  let loading = false;
  let lastCounts = null;
  const timers = [];

  const search = h('input', {type: 'search', value: q.q, placeholder: 'IPv4, IPv6, user or TEP',
                             autocomplete: 'off', spellcheck: 'false', 'data-test': 'leases-search'});
  const stateSel = select([['', 'All states'], ['active', 'Active'], ['expired', 'Expired (in grace)']],
                          {'data-test': 'leases-state'});
  stateSel.value = q.state;
  const tepSel = select([['', 'All TEPs']], {'data-test': 'leases-tep'});
  if (q.tep) tepSel.appendChild(h('option', {value: q.tep}, q.tep));
  tepSel.value = q.tep;
  const sizeSel = select(kPageSizes.map((n) => [String(n), `${n} rows`]), {'data-test': 'leases-limit'});
  sizeSel.value = String(q.limit);
  // On a phone the table's headers (the sort buttons) fold away with the table: this takes over.
  const sortSel = select([['ipv4:asc', 'IPv4 ascending'], ['ipv4:desc', 'IPv4 descending'],
                          ['expires_at:asc', 'Expires soonest first'], ['expires_at:desc', 'Expires latest first']],
                         {'data-test': 'leases-sort'});
  sortSel.value = `${q.sort}:${q.order}`;
  sortSel.addEventListener('change', () => {
    [q.sort, q.order] = sortSel.value.split(':');
    q.offset = 0;
    load();
  });

  const summary = h('span', {class: 'muted', 'data-test': 'leases-total', 'aria-live': 'polite'});
  const updated = h('span', {class: 'muted small'});
  const tableBox = h('div', {'data-test': 'leases-table-box'});
  const pager = h('div', {class: 'pager', 'data-test': 'leases-pager'});
  const errorBox = h('div');

  const form = h('form', {class: 'toolbar', role: 'search', 'aria-label': 'Lease search',
                          onsubmit: (e) => { e.preventDefault(); searchNow(); }},
                 h('div', {class: 'grow'}, field('Search', search)),
                 field('State', stateSel), field('TEP', tepSel), field('Page size', sizeSel),
                 h('div', {class: 'phone-only'}, field('Sort', sortSel)),
                 h('div', {class: 'field toolbar-buttons'},
                   h('button', {type: 'submit', class: 'btn primary', 'data-test': 'leases-search-submit'}, 'Search'),
                   h('button', {type: 'button', class: 'btn', 'data-test': 'leases-reset',
                                onclick: () => {
                                  search.value = ''; stateSel.value = ''; tepSel.value = '';
                                  searchNow();
                                }}, 'Reset')));

  replace(main,
          h('div', {class: 'page-head'}, h('h1', null, 'Leases'), summary, h('span', {class: 'spacer'}), updated,
            h('button', {type: 'button', class: 'btn small', 'data-test': 'leases-refresh', onclick: () => load()},
              'Refresh')),
          h('section', {class: 'card'}, h('div', {class: 'card-body'}, form, errorBox, tableBox, pager)));

  const searchLater = debounce(() => searchNow(), 350);
  function searchNow() {
    searchLater.cancel();
    q.q = search.value.trim();
    q.state = stateSel.value;
    q.tep = tepSel.value;
    q.limit = Number(sizeSel.value);
    q.offset = 0;
    load();
  }
  search.addEventListener('input', searchLater);
  for (const s of [stateSel, tepSel, sizeSel]) s.addEventListener('change', searchNow);

  async function load() {
    const mine = ++seq;
    loading = true;
    tableBox.setAttribute('aria-busy', 'true');
    sortSel.value = `${q.sort}:${q.order}`;
    ctx.setParams({q: q.q, state: q.state, tep: q.tep, sort: q.sort === 'ipv4' ? '' : q.sort,
                   order: q.order === 'asc' ? '' : q.order, offset: q.offset || '',
                   limit: q.limit === 50 ? '' : q.limit});
    try {
      const r = await get(withQuery('/api/leases', q), {timeout: 20000});
      if (mine !== seq) return;
      answer = r;
      error = null;
      updated.textContent = `updated ${fmtClock(new Date())}`;
    } catch (e) {
      if (mine !== seq) return;
      error = e;
    } finally {
      if (mine === seq) {
        loading = false;
        tableBox.removeAttribute('aria-busy');
      }
    }
    render();
  }

  function sortHeader(label, key) {
    const active = q.sort === key;
    const dir = active ? q.order : null;
    return h('th', {scope: 'col', 'aria-sort': active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'},
             h('button', {type: 'button', class: 'sort', 'data-test': `leases-sort-${key}`,
                          onclick: () => {
                            if (q.sort === key) q.order = q.order === 'asc' ? 'desc' : 'asc';
                            else { q.sort = key; q.order = 'asc'; }
                            q.offset = 0;
                            load();
                          }},
               label, h('span', {class: `sort-mark ${dir || ''}`, 'aria-hidden': 'true'})));
  }

  function leaseRow(l) {
    const actions = ctx.isAdmin ? h('td', {class: 'actions', 'data-label': ''},
      h('button', {type: 'button', class: 'btn small', 'data-test': 'lease-extend',
                   onclick: () => extend(l)}, 'Extend'),
      h('button', {type: 'button', class: 'btn small danger-outline', 'data-test': 'lease-release',
                   onclick: () => release(l)}, 'Release')) : null;
    return h('tr', {'data-test': 'lease-row', 'data-ipv4': l.ipv4, 'data-state': l.state},
      h('td', {class: 'mono', 'data-test': 'lease-ipv4', 'data-label': 'IPv4'}, l.ipv4),
      h('td', {class: 'mono', 'data-test': 'lease-ipv6', 'data-label': 'Client IPv6'}, l.ipv6),
      h('td', {class: 'nowrap', 'data-label': 'User'}, l.user ? l.user : h('span', {class: 'muted'}, 'anonymous')),
      h('td', {class: 'nowrap', 'data-label': 'TEP'}, l.tep || '–'),
      h('td', {'data-label': 'State'}, l.state === 'active' ? badge('active', 'ok') : badge(l.state || '?', 'warn')),
      h('td', {class: 'nowrap hide-phone', 'data-label': 'Granted'}, fmtTime(l.granted_at)),
      h('td', {class: 'nowrap', 'data-label': 'Expires'}, fmtTime(l.expires_at)),
      h('td', {class: 'nowrap num remaining', 'data-expires': l.expires_at, 'data-label': 'Remaining'},
        remainingText(l.expires_at)),
      actions);
  }

  function remainingText(expiresAt) {
    const left = Number(expiresAt) - Date.now() / 1000;
    if (!Number.isFinite(left)) return '';
    return left >= 0 ? fmtDuration(left) : `expired ${fmtDuration(-left)} ago`;
  }

  function render() {
    replace(errorBox, error ? h('div', {class: 'notice bad', role: 'alert', 'data-test': 'leases-error'},
      error.status === 503 ? error.message : `The leases could not be read: ${error.message}`,
      ' ', h('button', {type: 'button', class: 'btn small', onclick: () => load()}, 'Try again')) : null);
    if (!answer) {
      if (!error) replace(tableBox, h('p', {class: 'muted'}, 'Loading…'));
      return;
    }
    const list = listOf(answer, 'leases');
    const total = Number(answer.total ?? list.length);
    const columns = [sortHeader('IPv4', 'ipv4'), h('th', {scope: 'col'}, 'Client IPv6'),
                     h('th', {scope: 'col'}, 'User'), h('th', {scope: 'col'}, 'TEP'),
                     h('th', {scope: 'col'}, 'State'), h('th', {scope: 'col'}, 'Granted'),
                     sortHeader('Expires', 'expires_at'), h('th', {scope: 'col', class: 'num'}, 'Remaining'),
                     ctx.isAdmin ? h('th', {scope: 'col', class: 'actions'}, h('span', {class: 'sr-only'}, 'Actions')) : null];
    const filtered = q.q || q.state || q.tep;
    replace(tableBox, h('div', {class: 'table-wrap'},
      h('table', {class: 'grid stack', 'data-test': 'leases-table'},
        h('caption', {class: 'sr-only'}, 'Leases'),
        h('thead', null, h('tr', null, columns)),
        h('tbody', null, list.length ? list.map(leaseRow)
          : emptyRow(columns.filter(Boolean).length, filtered ? 'No lease matches these filters.' : 'No leases.')))));
    const from = list.length ? q.offset + 1 : 0;
    const to = q.offset + list.length;
    summary.textContent = `${fmtNumber(total)} lease${total === 1 ? '' : 's'}${filtered ? ' match' : ''}`;
    summary.dataset.total = String(total);
    const pages = Math.max(1, Math.ceil(total / q.limit));
    const page = Math.floor(q.offset / q.limit) + 1;
    replace(pager,
      h('span', {class: 'muted'}, `${fmtNumber(from)}–${fmtNumber(to)} of ${fmtNumber(total)}`),
      h('span', {class: 'spacer'}),
      h('button', {type: 'button', class: 'btn small', disabled: q.offset === 0, 'data-test': 'leases-prev',
                   onclick: () => { q.offset = Math.max(0, q.offset - q.limit); load(); }}, '‹ Previous'),
      h('span', {class: 'muted'}, `page ${page} of ${pages}`),
      h('button', {type: 'button', class: 'btn small', disabled: to >= total, 'data-test': 'leases-next',
                   onclick: () => { q.offset += q.limit; load(); }}, 'Next ›'));
  }

  async function release(l) {
    const ok = await ctx.confirmDialog(`Release ${l.ipv4}?`,
      h('div', null, h('p', null, `The lease of ${l.ipv6}${l.user ? ` (${l.user})` : ''} ends now: the address ` +
                        'goes back to the pool and the TEPs drop the mapping.'),
        h('p', {class: 'muted'}, 'A client that is still running will ask for a new lease.')),
      {confirmLabel: 'Release', danger: true, test: 'release-dialog'});
    if (!ok) return;
    try {
      await post(`/api/leases/${encodeURIComponent(l.ipv4)}/release`);
      ctx.toast(`${l.ipv4} released.`, 'ok');
    } catch (e) {
      ctx.toast(`Release failed: ${e.message}`, 'bad');
    }
    load();
  }

  async function extend(l) {
    const seconds = h('input', {type: 'number', min: 60, step: 60, value: 3600, required: true,
                                'data-test': 'extend-seconds'});
    const presets = h('div', {class: 'chips'}, [[3600, '1 hour'], [86400, '1 day'], [604800, '7 days']].map(([s, label]) =>
      h('button', {type: 'button', class: 'btn small', onclick: () => { seconds.value = s; }}, label)));
    const value = await ctx.openDialog({
      title: `Extend ${l.ipv4}`,
      test: 'extend-dialog',
      body: [h('p', null, `The lease then expires this long from now (now: ${remainingText(l.expires_at)}). ` +
                          'An expired lease becomes active again.'),
             field('Seconds from now', seconds, 'At least 60; at most the server\'s lease.max_lifetime.'), presets],
      actions: [{label: 'Cancel', value: null},
                {label: 'Extend', kind: 'primary', submit: true, test: 'extend-submit',
                 value: () => (seconds.reportValidity() ? Number(seconds.value) : undefined)}],
    });
    if (!value) return;
    try {
      await post(`/api/leases/${encodeURIComponent(l.ipv4)}/extend`, {seconds: value});
      ctx.toast(`${l.ipv4} extended by ${fmtDuration(value)}.`, 'ok');
    } catch (e) {
      ctx.toast(`Extend failed: ${e.message}`, 'bad');
    }
    load();
  }

  // The TEP filter's choices.
  get('/api/status').then((s) => {
    for (const t of listOf(s.teps, 'teps')) {
      if (![...tepSel.options].some((o) => o.value === t.name)) tepSel.appendChild(h('option', {value: t.name}, t.name));
    }
    tepSel.value = q.tep;
  }).catch(() => {});

  timers.push(setInterval(() => {
    for (const el of tableBox.querySelectorAll('[data-expires]')) el.textContent = remainingText(el.dataset.expires);
  }, 1000));
  timers.push(setInterval(() => { if (!loading && !document.getElementById('dialog').open) load(); }, 15000));
  load();

  return {
    // New or ended leases show up without a click: reload when the counts in the tick change.
    tick(data) {
      if (!data.leases) return;
      const counts = `${data.leases.active}/${data.leases.expired}`;
      if (lastCounts !== null && counts !== lastCounts && !loading && !document.getElementById('dialog').open) load();
      lastCounts = counts;
    },
    unmount() {
      for (const t of timers) clearInterval(t);
      searchLater.cancel();
      seq++;
    },
  };
}
