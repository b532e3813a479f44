// Logs: the recent lines of every daemon and of the dashboard itself (/api/logs), filtered by
// daemon, minimum level and text on the server, newest first, refreshed while the page is open,
// and downloadable as text with the same filters.
import {h, replace, field, select, table, emptyRow, fmtClock, fmtNumber, debounce, listOf} from './dom.js';
import {get, withQuery} from './net.js';

const kLevels = [['debug', 'debug and up'], ['info', 'info and up'], ['warn', 'warn and up'], ['error', 'error only']];

export function mount(main, ctx) {
  const p = ctx.params;
  const q = {daemon: p.get('daemon') || '', level: p.get('level') || 'info', q: p.get('q') || '',
             limit: Number(p.get('limit')) || 500};
  let seq = 0;

  const daemonSel = select([['', 'All']], {'data-test': 'logs-daemon'});
  if (q.daemon) daemonSel.appendChild(h('option', {value: q.daemon}, q.daemon));
  daemonSel.value = q.daemon;
  const levelSel = select(kLevels, {'data-test': 'logs-level'});
  levelSel.value = q.level;
  const text = h('input', {type: 'search', value: q.q, placeholder: 'text in the message or component',
                           spellcheck: 'false', 'data-test': 'logs-search'});
  const limitSel = select([['200', '200 lines'], ['500', '500 lines'], ['1000', '1000 lines'], ['2000', '2000 lines']],
                          {'data-test': 'logs-limit'});
  limitSel.value = String(q.limit);
  const follow = h('input', {type: 'checkbox', id: 'logs-follow', checked: true, 'data-test': 'logs-follow'});
  const download = h('a', {class: 'btn', 'data-test': 'logs-download', download: 'appliance-logs.txt'}, 'Download');
  const count = h('span', {class: 'muted', 'data-test': 'logs-count'});
  const box = h('div', {'data-test': 'logs-box'});

  replace(main,
    h('div', {class: 'page-head'}, h('h1', null, 'Logs'), count),
    h('section', {class: 'card'}, h('div', {class: 'card-body'},
      h('form', {class: 'toolbar', role: 'search', 'aria-label': 'Log filters', onsubmit: (e) => { e.preventDefault(); apply(); }},
        field('Daemon', daemonSel), field('Level', levelSel), h('div', {class: 'grow'}, field('Text', text)),
        field('Lines', limitSel),
        h('div', {class: 'field toolbar-buttons'},
          h('div', {class: 'leaf check'}, follow, h('label', {for: 'logs-follow'}, 'Follow')),
          h('button', {type: 'submit', class: 'btn primary'}, 'Filter'), download)),
      box)));

  function apply() {
    q.daemon = daemonSel.value;
    q.level = levelSel.value;
    q.q = text.value.trim();
    q.limit = Number(limitSel.value);
    load();
  }
  const applyLater = debounce(apply, 350);
  text.addEventListener('input', applyLater);
  for (const s of [daemonSel, levelSel, limitSel]) s.addEventListener('change', apply);

  async function load() {
    const mine = ++seq;
    ctx.setParams({daemon: q.daemon, level: q.level === 'info' ? '' : q.level, q: q.q, limit: q.limit === 500 ? '' : q.limit});
    download.href = withQuery('/api/logs/download', q);
    try {
      const r = await get(withQuery('/api/logs', q), {timeout: 15000});
      if (mine !== seq) return;
      render(listOf(r, 'lines'), listOf(r, 'unavailable'));
    } catch (e) {
      if (mine !== seq) return;
      replace(box, h('div', {class: 'notice bad', role: 'alert'}, `The logs could not be read: ${e.message}`));
    }
  }

  function render(lines, unavailable) {
    const newest = [...lines].reverse();
    count.textContent = `${fmtNumber(lines.length)} line${lines.length === 1 ? '' : 's'} · updated ${fmtClock(new Date())}`;
    for (const name of new Set(lines.map((l) => l.daemon))) {
      if (name && ![...daemonSel.options].some((o) => o.value === name)) daemonSel.appendChild(h('option', {value: name}, name));
    }
    replace(box, unavailable.length ? h('div', {class: 'notice warn', 'data-test': 'logs-unavailable'},
      `Not shown: ${unavailable.map((u) => `${u.daemon} (${u.error})`).join(', ')}.`) : null,
    table([{label: 'Time'}, {label: 'Daemon'}, {label: 'Level'}, {label: 'Component'}, {label: 'Message'}],
      newest.length ? newest.map((l) => h('tr', {class: `log-${l.level}`, 'data-test': 'log-row', 'data-daemon': l.daemon,
                                                 'data-level': l.level},
        h('td', {class: 'nowrap mono small', title: l.time}, shortTime(l.time)),
        h('td', {class: 'nowrap'}, l.daemon),
        h('td', null, h('span', {class: `level level-${l.level}`}, l.level)),
        h('td', {class: 'nowrap muted'}, l.component),
        h('td', {class: 'mono wrap message'}, l.message)))
        : [emptyRow(5, 'No line matches.')], {'data-test': 'logs-table', class: 'grid logs'}));
  }

  function shortTime(t) {
    const d = new Date(t);
    if (Number.isNaN(d.getTime())) return String(t ?? '');
    return `${d.toISOString().slice(0, 10)} ${fmtClock(d)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }

  // Daemon names from the status, so the filter offers them before any line arrived.
  get('/api/status').then((s) => {
    for (const d of listOf(s.daemons, 'daemons')) {
      if (![...daemonSel.options].some((o) => o.value === d.name)) daemonSel.appendChild(h('option', {value: d.name}, d.name));
    }
    daemonSel.value = q.daemon;
  }).catch(() => {});

  load();
  const timer = setInterval(() => { if (follow.checked) load(); }, 3000);
  return {unmount() { clearInterval(timer); applyLater.cancel(); seq++; }};
}
