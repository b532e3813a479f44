// DOM building and formatting helpers shared by every page. Text always goes in through
// textContent, never innerHTML: log lines, user names and config values come from outside.

// h('div', {class: 'x', 'data-test': 'y', onclick: fn}, child, 'text', [more]) -> Element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = value;
      } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected' ||
                 key === 'indeterminate') {
        el[key] = value;
      } else if (value === true) {
        el.setAttribute(key, '');
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replaces every child of el.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A labelled form control: <div class="field"><label>..</label>control<small>hint</small></div>.
let fieldSerial = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++fieldSerial}`;
  const parts = [h('label', {for: control.id}, label), control];
  if (hint) {
    const hid = `${control.id}-hint`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', {class: 'hint', id: hid}, hint));
  }
  return h('div', {class: 'field'}, parts);
}

export function select(options, attrs) {
  return h('select', attrs, options.map(([value, label]) => h('option', {value}, label)));
}

// <span class="badge ok">up</span>; kind: ok, bad, warn, muted, info.
export function badge(text, kind, attrs) {
  return h('span', {class: `badge ${kind || 'muted'}`, ...attrs}, text);
}

// A card (panel) with a title, optional actions on the right and a body.
export function card(title, body, {actions, test, cls} = {}) {
  return h('section', {class: `card ${cls || ''}`, 'data-test': test},
           h('header', {class: 'card-head'}, h('h2', null, title),
             actions ? h('div', {class: 'card-actions'}, actions) : null),
           h('div', {class: 'card-body'}, body));
}

// A definition list from [label, value] pairs (value may be a Node).
export function facts(pairs, attrs) {
  return h('dl', {class: 'facts', ...attrs},
           pairs.filter(Boolean).map(([k, v, test]) => [h('dt', null, k),
                                                        h('dd', {'data-test': test}, v ?? '–')]));
}

// A progress meter: role=meter with its numbers for screen readers.
export function meter(fraction, label, attrs) {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const bar = h('span', {class: 'meter-fill'});
  bar.style.width = `${(f * 100).toFixed(1)}%`;
  const cls = f >= 0.9 ? 'bad' : f >= 0.75 ? 'warn' : 'ok';
  return h('span', {class: `meter ${cls}`, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100,
                    'aria-valuenow': Math.round(f * 100), 'aria-label': label, ...attrs}, bar);
}

// A table inside a horizontally scrolling wrapper. columns: [{label, sort?, cls?}].
export function table(columns, rows, attrs = {}) {
  const head = h('tr', null, columns.map((c) => h('th', {scope: 'col', class: c.cls}, c.label)));
  return h('div', {class: 'table-wrap'},
           h('table', {class: 'grid', ...attrs}, h('thead', null, head), h('tbody', null, rows)));
}

export function emptyRow(colspan, text) {
  return h('tr', {class: 'empty'}, h('td', {colspan}, text));
}

// --- Formatting.

const kUnits = ['', 'k', 'M', 'G', 'T', 'P'];

export function fmtNumber(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  return Number(n).toLocaleString('en-US');
}

// 1536 -> "1.5 KiB".
export function fmtBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  let v = Number(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

// SI rate: 1250000, 'bit/s' -> "1.25 Mbit/s".
export function fmtRate(n, unit) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1000 && i < kUnits.length - 1) { v /= 1000; ++i; }
  const digits = i === 0 ? (v < 10 && v !== Math.round(v) ? 1 : 0) : v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${v.toFixed(digits)} ${kUnits[i]}${unit}`;
}

// 93784 -> "1d 2h 3m"; 59 -> "59s".
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '–';
  let s = Math.max(0, Math.round(Number(seconds)));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hh}h ${m}m`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const pad = (n) => String(n).padStart(2, '0');

// A Date from Unix seconds, Unix milliseconds (numbers past 1e11: year 5138 in seconds), ISO
// text or a Date.
export function toDate(t) {
  if (t instanceof Date) return t;
  if (typeof t === 'number') return new Date(Math.abs(t) > 1e11 ? t : t * 1000);
  return new Date(t);
}

// A time as local "YYYY-MM-DD HH:MM:SS"; accepts what toDate accepts.
export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '–';
  const d = toDate(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtPercent(f, digits = 0) {
  if (!Number.isFinite(f)) return '–';
  return `${(f * 100).toFixed(digits)} %`;
}

export function fmtMs(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
  const n = Number(v);
  return `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)} ms`;
}

// The answer of a list endpoint, whether it is the array itself or an object holding it.
export function listOf(answer, key) {
  if (Array.isArray(answer)) return answer;
  if (answer && Array.isArray(answer[key])) return answer[key];
  return [];
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
}

// "drop_reason_name" -> "Drop reason name".
export function humanize(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
