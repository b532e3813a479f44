// Overview: system and daemon health, pool and lease figures, TSP sessions, TEP health and the
// live traffic graph (Chart.js, fed by the /api/events ticks), per TEP and in total.
import {h, replace, card, facts, meter, table, emptyRow, badge, select, fmtNumber, fmtBytes,
        fmtRate, fmtDuration, fmtTime, fmtClock, fmtPercent, fmtMs, listOf, toDate} from './dom.js';
import {get} from './net.js';

const kHistory = 120;  // ticks kept: two minutes at one a second
const kPalette = ['#7c3aed', '#ea580c', '#0891b2', '#db2777', '#65a30d', '#ca8a04', '#4f46e5', '#0d9488'];

export function mount(main, ctx) {
  let status = null;
  let statusError = null;
  let timer = null;
  let chart = null;
  let unit = localStorage.getItem('appl.traffic.unit') || 'bps';
  const history = [];  // {time: Date, total, teps}

  const tiles = h('div', {class: 'tiles', 'data-test': 'overview-tiles'});
  const system = h('div');
  const daemons = h('div');
  const tepHealth = h('div');
  const rates = h('div', {class: 'rates', 'data-test': 'traffic-rates'});
  const canvas = h('canvas', {id: 'traffic-canvas', 'aria-label': 'Live traffic per TEP and in total',
                              role: 'img', 'data-test': 'traffic-canvas'});
  const chartBox = h('div', {class: 'chart-box', 'data-test': 'traffic-chart', 'data-samples': '0'},
                     canvas);
  const chartNote = h('p', {class: 'muted small', 'data-test': 'traffic-note'},
                      'Waiting for the first sample…');
  const unitSelect = select([['bps', 'bits/s'], ['pps', 'packets/s']],
                            {'aria-label': 'Traffic unit', 'data-test': 'traffic-unit',
                             onchange: (e) => {
                               unit = e.target.value;
                               localStorage.setItem('appl.traffic.unit', unit);
                               redrawChart();
                             }});
  unitSelect.value = unit;
  const errorBox = h('div');

  replace(main,
          h('div', {class: 'page-head'}, h('h1', null, 'Overview'),
            h('span', {class: 'muted small', id: 'overview-updated', 'data-test': 'overview-updated'})),
          errorBox,
          tiles,
          card('Live traffic', [chartBox, chartNote, rates],
               {actions: [unitSelect], test: 'traffic-card', cls: 'wide'}),
          h('div', {class: 'columns'},
            card('System', system, {test: 'system-card'}),
            card('Daemons', daemons, {test: 'daemons-card'})),
          card('TEP health', tepHealth,
               {test: 'tep-health-card', actions: [h('a', {href: '#/teps', class: 'btn small'}, 'TEP details')]}));

  // --- Status (every 10 s; the ticks refresh the figures they carry in between).
  async function load() {
    try {
      status = await get('/api/status', {timeout: 15000});
      statusError = null;
      document.getElementById('overview-updated').textContent = `updated ${fmtClock(new Date())}`;
    } catch (e) {
      statusError = e.message;
    }
    render();
  }

  function render() {
    replace(errorBox, statusError ? h('div', {class: 'notice bad', role: 'alert', 'data-test': 'overview-error'},
                                      `Status could not be read: ${statusError}`) : null);
    if (!status) return;
    renderTiles();
    renderSystem();
    renderDaemons();
    renderTeps();
  }

  function tile(title, value, sub, extra, test) {
    return h('div', {class: 'tile', 'data-test': test},
             h('div', {class: 'tile-title'}, title),
             h('div', {class: 'tile-value', 'data-test': test && `${test}-value`}, value),
             sub ? h('div', {class: 'tile-sub muted'}, sub) : null,
             extra);
  }

  function renderTiles() {
    const s = status;
    const pool = s.pool;
    const leases = s.leases;
    const sessions = s.sessions;
    const mem = s.memory || {};
    const memUsed = mem.total ? (mem.total - (mem.available ?? 0)) : null;
    const cpu = s.cpu && Number.isFinite(Number(s.cpu.percent)) ? Number(s.cpu.percent) : null;
    const poolFraction = pool && pool.total ? pool.used / pool.total : NaN;
    replace(tiles,
      tile('Uptime', fmtDuration(s.uptime), `dashboard up ${fmtDuration(s.web_uptime)}`, null, 'tile-uptime'),
      tile('CPU', cpu === null ? '–' : `${cpu.toFixed(0)} %`, 'all cores',
           meter(cpu === null ? NaN : cpu / 100, 'CPU use'), 'tile-cpu'),
      tile('Memory', memUsed === null ? '–' : fmtBytes(memUsed),
           mem.total ? `of ${fmtBytes(mem.total)} (${fmtBytes(mem.available)} available)` : null,
           meter(mem.total ? memUsed / mem.total : NaN, 'Memory use'), 'tile-memory'),
      tile('IPv4 pool', pool ? `${fmtNumber(pool.used)} / ${fmtNumber(pool.total)}` : '–',
           pool ? `${fmtNumber(pool.free)} free · ${fmtPercent(poolFraction)} used` : 'dstm-server not answering',
           meter(poolFraction, 'Pool use'), 'tile-pool'),
      tile('Leases', leases ? fmtNumber(leases.active) : '–',
           leases ? `active · ${fmtNumber(leases.expired)} expired (in grace)` +
                    `${s.lease_lifetime ? ` · lifetime ${fmtDuration(s.lease_lifetime)}` : ''}` : 'dstm-server not answering',
           null, 'tile-leases'),
      tile('TSP sessions', sessions ? fmtNumber((sessions.tcp ?? 0) + (sessions.udp ?? 0)) : '–',
           sessions ? `${fmtNumber(sessions.tcp)} TCP · ${fmtNumber(sessions.udp)} UDP` : 'dstm-server not answering',
           null, 'tile-sessions'));
  }

  function renderSystem() {
    const s = status;
    replace(system, facts([
      ['Hostname', s.hostname, 'sys-hostname'],
      ['Version', s.version, 'sys-version'],
      ['Build', s.build, 'sys-build'],
      ['Roles', (s.roles || []).length ? h('span', {class: 'chips'}, [...new Set(s.roles)].map((r) => badge(r, 'info'))) : '–',
       'sys-roles'],
      ['System uptime', fmtDuration(s.uptime)],
      ['Dashboard uptime', fmtDuration(s.web_uptime)],
    ]));
  }

  function daemonRows(list) {
    return list.length ? list.map((d) => h('tr', {'data-daemon': d.name, 'data-test': 'daemon-row'},
      h('td', {class: 'nowrap'}, h('strong', null, d.name)),
      h('td', {class: 'nowrap'}, d.kind || ''),
      h('td', {class: 'daemon-state'}, d.up ? badge('up', 'ok') : badge('down', 'bad', {title: d.error || ''})),
      h('td', {class: 'num'}, d.generation ?? '–'),
      h('td', {class: 'nowrap'}, d.started_at ? fmtTime(d.started_at) : '–'),
      h('td', {class: 'muted wrap'}, d.up ? '' : d.error || '')))
      : [emptyRow(6, 'No daemons in the config document.')];
  }

  function renderDaemons() {
    replace(daemons, table([{label: 'Name'}, {label: 'Kind'}, {label: 'State'}, {label: 'Generation', cls: 'num'},
                            {label: 'Started'}, {label: 'Error'}],
                           daemonRows(listOf(status.daemons, 'daemons')), {'data-test': 'daemons-table'}));
  }

  function latency(l) {
    if (l === null || l === undefined) return '–';
    if (typeof l === 'number') return fmtMs(l);
    if (l.p50_ms === undefined) return 'no samples';
    return `${fmtMs(l.p50_ms)} / ${fmtMs(l.p99_ms)}`;
  }

  function renderTeps() {
    const list = listOf(status.teps, 'teps');
    replace(tepHealth, table(
      [{label: 'TEP'}, {label: 'At the server'}, {label: 'Daemon'}, {label: 'Bindings', cls: 'num'},
       {label: 'Queries/s', cls: 'num'}, {label: 'Latency p50 / p99', cls: 'num'}],
      list.length ? list.map((t) => h('tr', {'data-test': 'tep-health-row', 'data-tep': t.name},
        h('td', null, h('strong', null, t.name)),
        h('td', null, t.alive === null || t.alive === undefined ? badge('not at the server', 'muted')
          : t.alive ? badge('alive', 'ok') : badge('not alive', 'bad')),
        h('td', null, t.up === null || t.up === undefined ? badge('on another box', 'muted')
          : t.up ? badge('answers', 'ok') : badge('down', 'bad')),
        h('td', {class: 'num'}, fmtNumber(t.bindings)),
        h('td', {class: 'num'}, Number.isFinite(Number(t.query_rate)) ? Number(t.query_rate).toFixed(2) : '–'),
        h('td', {class: 'num'}, latency(t.query_latency))))
        : [emptyRow(6, 'This box runs no TEP.')],
      {'data-test': 'tep-health-table'}));
  }

  // --- Live traffic.
  function seriesKeys(kind) {
    return unit === 'bps' ? `${kind}_bps` : `${kind}_pps`;
  }

  function ensureChart() {
    if (chart || !window.Chart) return chart;
    chart = new window.Chart(canvas, {
      type: 'line',
      data: {labels: [], datasets: []},
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        normalized: true,
        interaction: {mode: 'index', intersect: false},
        elements: {point: {radius: 0, hitRadius: 6}, line: {borderWidth: 2, cubicInterpolationMode: 'monotone'}},
        scales: {
          x: {ticks: {maxTicksLimit: 7, maxRotation: 0, autoSkip: true}, grid: {display: false}},
          y: {beginAtZero: true, ticks: {maxTicksLimit: 6, callback: (v) => fmtRate(v, unit === 'bps' ? 'bit/s' : 'p/s')}},
        },
        plugins: {
          legend: {position: 'bottom', labels: {usePointStyle: true, pointStyle: 'line', boxWidth: 28}},
          tooltip: {callbacks: {label: (c) => `${c.dataset.label}: ${fmtRate(c.parsed.y, unit === 'bps' ? 'bit/s' : 'p/s')}`}},
        },
      },
    });
    return chart;
  }

  // Datasets keep their identity (and so their hidden state from the legend); TEPs that appear
  // later get a new pair.
  function datasetFor(label, color, dashed, total) {
    let ds = chart.data.datasets.find((d) => d.label === label);
    if (!ds) {
      ds = {label, data: [], borderColor: color, backgroundColor: color, borderWidth: total ? 2.5 : 1.5,
            borderDash: dashed ? [6, 4] : [], fill: false, spanGaps: true, pointStyle: 'line'};
      chart.data.datasets.push(ds);
    }
    return ds;
  }

  function redrawChart() {
    if (!ensureChart()) {
      chartNote.textContent = 'The charting library (/vendor/chart.min.js) did not load.';
      return;
    }
    chart.data.labels = history.map((p) => fmtClock(p.time));
    const inKey = seriesKeys('in');
    const outKey = seriesKeys('out');
    const value = (o, k) => (o && Number.isFinite(Number(o[k])) ? Number(o[k]) : null);
    datasetFor('Total in', '#1d4ed8', false, true).data = history.map((p) => value(p.total, inKey));
    datasetFor('Total out', '#15803d', true, true).data = history.map((p) => value(p.total, outKey));
    const names = [...new Set(history.flatMap((p) => Object.keys(p.teps || {})))].sort();
    names.forEach((name, i) => {
      const color = kPalette[i % kPalette.length];
      datasetFor(`${name} in`, color, false, false).data = history.map((p) => value(p.teps?.[name], inKey));
      datasetFor(`${name} out`, color, true, false).data = history.map((p) => value(p.teps?.[name], outKey));
    });
    chart.options.scales.y.ticks.callback = (v) => fmtRate(v, unit === 'bps' ? 'bit/s' : 'p/s');
    chart.update('none');
  }

  function renderRates(last) {
    const rows = [['Total', last.total]].concat(Object.entries(last.teps || {}).sort(([a], [b]) => a.localeCompare(b)));
    replace(rates, table([{label: ''}, {label: 'In', cls: 'num'}, {label: 'Out', cls: 'num'},
                          {label: 'In (packets)', cls: 'num'}, {label: 'Out (packets)', cls: 'num'}],
      rows.map(([name, r]) => h('tr', {'data-test': 'rate-row', 'data-name': name},
        h('th', {scope: 'row'}, name),
        h('td', {class: 'num', 'data-test': 'rate-in'}, fmtRate(r?.in_bps, 'bit/s')),
        h('td', {class: 'num', 'data-test': 'rate-out'}, fmtRate(r?.out_bps, 'bit/s')),
        h('td', {class: 'num'}, fmtRate(r?.in_pps, 'p/s')),
        h('td', {class: 'num'}, fmtRate(r?.out_pps, 'p/s'))))));
  }

  function onTick(data) {
    if (data.traffic) {
      history.push({time: data.time ? toDate(data.time) : new Date(),
                    total: data.traffic.total || {}, teps: data.traffic.teps || {}});
      while (history.length > kHistory) history.shift();
      const n = Number(chartBox.dataset.samples) + 1;
      chartBox.dataset.samples = String(n);
      const t = data.traffic.total || {};
      chartBox.dataset.totalInBps = String(t.in_bps ?? 0);
      chartBox.dataset.totalOutBps = String(t.out_bps ?? 0);
      chartNote.textContent = `Last ${Math.min(history.length, kHistory)} s, one sample a second. ` +
                              'Click a legend entry to hide or show a line.';
      redrawChart();
      renderRates(history[history.length - 1]);
    }
    // The tick's figures are fresher than the last /api/status.
    if (status) {
      if ('pool' in data) status.pool = data.pool;
      if ('leases' in data) status.leases = data.leases;
      if ('sessions' in data) status.sessions = data.sessions;
      if (Array.isArray(data.daemons)) {
        for (const d of data.daemons) {
          const known = listOf(status.daemons, 'daemons').find((x) => x.name === d.name);
          if (known) known.up = d.up;
        }
      }
      renderTiles();
      renderDaemons();
    }
  }

  load();
  timer = setInterval(load, 10000);

  return {
    tick: onTick,
    unmount() {
      clearInterval(timer);
      if (chart) chart.destroy();
    },
  };
}
