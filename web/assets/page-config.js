// Config: the appliance document as a form generated from the document itself (every leaf an
// input carrying its JSON pointer in data-pointer), a raw JSON editor, check with errors shown at
// the field, review of the changes, apply with a confirmation window or without, and the
// revision history with revert.
import {h, replace, badge, field, table, emptyRow, fmtTime, fmtDuration, listOf} from './dom.js';
import {get, post, ApiError} from './net.js';

const kRedacted = '********';
const kSecretKeys = new Set(['password', 'digest_md5']);

// --- JSON pointers (RFC 6901).
const escapeToken = (t) => String(t).replace(/~/g, '~0').replace(/\//g, '~1');
const unescapeToken = (t) => t.replace(/~1/g, '/').replace(/~0/g, '~');
const join = (pointer, token) => `${pointer}/${escapeToken(token)}`;
const tokens = (pointer) => (pointer === '' ? [] : pointer.slice(1).split('/').map(unescapeToken));
const parent = (pointer) => pointer.slice(0, Math.max(0, pointer.lastIndexOf('/')));

function at(doc, pointer) {
  let v = doc;
  for (const t of tokens(pointer)) {
    if (v === null || typeof v !== 'object' || !(t in v)) return undefined;
    v = v[t];
  }
  return v;
}

function setAt(doc, pointer, value) {
  const ts = tokens(pointer);
  let v = doc;
  for (const t of ts.slice(0, -1)) v = v[t];
  v[ts[ts.length - 1]] = value;
}

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const kNumber = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

// The text of an input back to a JSON value, keeping the type the document had there. What does
// not fit stays text, so that the daemon's check names the field ("expected a number").
function coerce(text, type) {
  if (type === 'number') return kNumber.test(text.trim()) ? Number(text.trim()) : text;
  if (type === 'null') {
    const t = text.trim();
    if (t === '') return null;
    if (kNumber.test(t)) return Number(t);
    if (t === 'true' || t === 'false') return t === 'true';
    return text;
  }
  return text;
}

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

export function mount(main, ctx) {
  const admin = ctx.isAdmin;
  let original = null;   // the running document (redacted)
  let working = null;    // the edited document
  let revision = null;
  let tab = ['form', 'raw', 'history'].includes(ctx.params.get('tab')) ? ctx.params.get('tab') : 'form';
  let busy = false;
  let lastErrors = [];
  let stale = false;     // the running config changed under unsaved edits
  let awaiting = null;   // the revision of our apply that waits for confirmation

  const head = h('div', {class: 'page-head'}, h('h1', null, 'Configuration'));
  const meta = h('span', {class: 'muted', 'data-test': 'config-revision'});
  const dirtyMark = h('span', {class: 'badge warn', hidden: true, 'data-test': 'config-dirty'}, 'unsaved changes');
  head.append(meta, dirtyMark);

  const tabButtons = {};
  const tabs = h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'Config views'},
    [['form', 'Form'], ['raw', 'Raw JSON'], ['history', 'History']].map(([id, label]) => {
      const b = h('button', {type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`,
                             'data-test': `config-tab-${id}`, onclick: () => switchTab(id)}, label);
      tabButtons[id] = b;
      return b;
    }));

  // Arrow keys move between the tabs, as in any tablist.
  tabs.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const ids = Object.keys(tabButtons);
    const next = ids[(ids.indexOf(tab) + (e.key === 'ArrowRight' ? 1 : ids.length - 1)) % ids.length];
    switchTab(next);
    tabButtons[tab].focus();
    e.preventDefault();
  });

  const btn = (label, test, onclick, cls = '') => h('button', {type: 'button', class: `btn ${cls}`, 'data-test': test, onclick}, label);
  const actionBar = h('div', {class: 'actionbar', 'data-test': 'config-actions'},
    btn('Check', 'config-check', () => check()),
    btn('Review changes', 'config-diff', () => review()),
    btn('Apply…', 'config-apply', () => apply(true), 'primary'),
    btn('Apply without confirmation…', 'config-apply-unconfirmed', () => apply(false)),
    h('span', {class: 'spacer'}),
    btn('Discard changes', 'config-discard', () => discard(), 'ghost'));
  const busyNote = h('span', {class: 'busy', hidden: true, role: 'status', 'data-test': 'config-busy'});
  actionBar.appendChild(busyNote);

  const results = h('div', {class: 'config-results', 'data-test': 'config-results', 'aria-live': 'polite'});
  const staleBox = h('div');
  // A form element, so that the secrets' password inputs sit in one (browsers expect it); it is
  // never submitted.
  const formPanel = h('form', {id: 'panel-form', role: 'tabpanel', 'aria-labelledby': 'tab-form', class: 'config-form',
                               'data-test': 'config-form', autocomplete: 'off', novalidate: true,
                               onsubmit: (e) => e.preventDefault()});
  const raw = h('textarea', {class: 'raw', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'The config document as JSON',
                             'data-test': 'config-raw', readonly: !admin});
  const rawError = h('p', {class: 'form-error', role: 'alert', hidden: true, 'data-test': 'config-raw-error'});
  const rawPanel = h('div', {id: 'panel-raw', role: 'tabpanel', 'aria-labelledby': 'tab-raw'},
    h('p', {class: 'muted small'}, 'Secrets are shown as ', h('code', null, kRedacted),
      '; leave them so to keep the running value.'),
    raw, rawError,
    admin ? h('div', {class: 'toolbar'}, btn('Format', 'config-raw-format', () => {
      const doc = parseRaw();
      if (doc !== undefined) raw.value = JSON.stringify(doc, null, 2);
    }, 'small')) : null);
  const historyPanel = h('div', {id: 'panel-history', role: 'tabpanel', 'aria-labelledby': 'tab-history',
                                 'data-test': 'config-history'});

  replace(main, head,
    admin ? null : h('div', {class: 'notice info'}, 'Read-only: you are signed in as a viewer.'),
    staleBox, tabs,
    admin ? actionBar : null,
    results, formPanel, rawPanel, historyPanel);

  raw.addEventListener('input', () => {
    const doc = parseRaw();
    if (doc !== undefined) {
      working = doc;
      updateDirty();
    }
  });

  // --- Loading.
  async function load() {
    try {
      const r = await get('/api/config');
      original = r.document;
      working = clone(original);
      revision = r.revision;
      ctx.setPending(r.pending);
      stale = false;
      lastErrors = [];
      render();
    } catch (e) {
      replace(formPanel, h('div', {class: 'notice bad', role: 'alert'}, `The config could not be read: ${e.message}`));
    }
  }

  function render() {
    meta.textContent = revision !== null && revision !== undefined ? `running revision ${revision}` : '';
    meta.dataset.revision = String(revision ?? '');
    replace(staleBox, stale ? h('div', {class: 'notice warn', 'data-test': 'config-stale'},
      'The running configuration changed while you were editing. ',
      h('button', {type: 'button', class: 'btn small', onclick: () => load()}, 'Load the running config (drops your edits)')) : null);
    renderForm();
    raw.value = JSON.stringify(working, null, 2);
    rawError.hidden = true;
    updateDirty();
    showTab();
    updateButtons();
  }

  function switchTab(id) {
    if (tab === 'raw' && id !== 'raw') {
      const doc = parseRaw();
      if (doc === undefined) return;  // stay until the JSON parses
      working = doc;
      renderForm();
      showErrors(lastErrors);
    }
    if (id === 'raw') raw.value = JSON.stringify(working, null, 2);
    tab = id;
    ctx.setParams({tab: tab === 'form' ? '' : tab});
    showTab();
    if (id === 'history') loadHistory();
  }

  function showTab() {
    for (const [id, b] of Object.entries(tabButtons)) {
      b.setAttribute('aria-selected', String(id === tab));
      b.tabIndex = id === tab ? 0 : -1;
    }
    formPanel.hidden = tab !== 'form';
    rawPanel.hidden = tab !== 'raw';
    historyPanel.hidden = tab !== 'history';
    actionBar.hidden = tab === 'history';
    results.hidden = tab === 'history';
  }

  function parseRaw() {
    try {
      const doc = JSON.parse(raw.value);
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the document must be a JSON object');
      rawError.hidden = true;
      raw.removeAttribute('aria-invalid');
      return doc;
    } catch (e) {
      rawError.hidden = false;
      rawError.textContent = `Not valid JSON: ${e.message}`;
      raw.setAttribute('aria-invalid', 'true');
      return undefined;
    }
  }

  // The document to send: from the raw editor when that is open.
  function currentDocument() {
    if (tab === 'raw') {
      const doc = parseRaw();
      if (doc === undefined) return undefined;
      working = doc;
    }
    return working;
  }

  function updateDirty() {
    const dirty = original !== null && !same(working, original);
    dirtyMark.hidden = !dirty;
    main.dataset.dirty = String(dirty);
  }

  function updateButtons() {
    const pending = ctx.pending();
    for (const b of actionBar.querySelectorAll('button')) b.disabled = busy;
    for (const test of ['config-apply', 'config-apply-unconfirmed']) {
      const b = actionBar.querySelector(`[data-test="${test}"]`);
      if (!b) continue;
      b.disabled = busy || !!pending;
      b.title = pending ? 'An apply waits for confirmation: confirm or roll back first.' : '';
    }
  }

  // --- The generated form.
  let serial = 0;
  function renderForm() {
    serial = 0;
    const sections = Object.entries(working || {}).map(([key, value]) => {
      const pointer = join('', key);
      return h('details', {class: 'section', open: true, 'data-pointer': pointer, 'data-test': 'config-section',
                           'data-section': key},
        h('summary', null, h('span', {class: 'section-name'}, key), h('span', {class: 'muted small'}, describe(value))),
        h('div', {class: 'section-body'}, errorSlot(pointer), node(value, pointer, key)));
    });
    replace(formPanel, sections.length ? sections : h('p', {class: 'muted'}, 'The document is empty.'));
  }

  function describe(v) {
    if (Array.isArray(v)) return `${v.length} item${v.length === 1 ? '' : 's'}`;
    if (v && typeof v === 'object') return `${Object.keys(v).length} settings`;
    return '';
  }

  function errorSlot(pointer) {
    return h('div', {class: 'error-slot', 'data-slot': pointer});
  }

  // The children of an object or array (the container itself is drawn by the caller).
  function node(value, pointer, key) {
    const type = typeOf(value);
    if (type === 'object') {
      const leaves = [];
      const groups = [];
      for (const [k, v] of Object.entries(value)) {
        const p = join(pointer, k);
        const t = typeOf(v);
        if (t === 'array' && isScalarList(v)) leaves.push(scalarList(v, p, k));
        else if (t === 'object' || t === 'array') groups.push(group(v, p, k));
        else leaves.push(leaf(v, p, k));
      }
      return [leaves.length ? h('div', {class: 'leaves'}, leaves) : null, groups];
    }
    if (type === 'array') return isScalarList(value) ? h('div', {class: 'leaves'}, scalarList(value, pointer, key))
                                                     : arrayBody(value, pointer, key);
    return leaf(value, pointer, key);
  }

  function isScalarList(list) {
    return list.every((v) => typeOf(v) !== 'object' && typeOf(v) !== 'array');
  }

  // A list of plain values (addresses, prefixes): one input per item in a compact block.
  function scalarList(list, pointer, key) {
    const items = list.map((v, i) => {
      const p = join(pointer, i);
      const input = leafInput(v, p, `${key} item ${i + 1}`);
      const row = h('div', {class: 'list-item', 'data-leaf': p}, input,
        admin ? h('button', {type: 'button', class: 'btn small ghost', 'aria-label': `Remove ${key} item ${i + 1}`,
                             'data-test': 'config-array-remove',
                             onclick: () => { at(working, pointer).splice(i, 1); changedStructure(); }}, '×') : null);
      if (!same(v, at(original, p))) row.classList.add('changed');
      return h('div', null, row, errorSlot(p));
    });
    return h('fieldset', {class: 'leaf list', 'data-pointer': pointer},
      h('legend', {class: 'key', title: pointer}, key),
      items.length ? items : h('p', {class: 'muted small'}, 'empty'),
      errorSlot(pointer),
      admin ? h('button', {type: 'button', class: 'btn small', 'data-test': 'config-array-add',
                           onclick: () => { at(working, pointer).push(''); changedStructure(); }}, `Add to ${key}`) : null);
  }

  function group(value, pointer, key) {
    return h('fieldset', {class: 'group', 'data-pointer': pointer},
      h('legend', null, h('span', {class: 'key'}, key), h('span', {class: 'muted small'}, describe(value))),
      errorSlot(pointer), node(value, pointer, key));
  }

  function arrayBody(list, pointer, key) {
    const items = list.map((v, i) => {
      const p = join(pointer, i);
      const remove = admin ? h('button', {type: 'button', class: 'btn small ghost', 'data-test': 'config-array-remove',
                                          'aria-label': `Remove ${key} item ${i + 1}`,
                                          onclick: () => { at(working, pointer).splice(i, 1); changedStructure(); }}, 'Remove') : null;
      const name = v && typeof v === 'object' && !Array.isArray(v) && typeof v.name === 'string' ? v.name : '';
      return h('fieldset', {class: 'group item', 'data-pointer': p},
        h('legend', null, h('span', {class: 'key'}, `${key}[${i}]`), name ? h('span', {class: 'muted small'}, name) : null, remove),
        errorSlot(p), node(v, p, `${key}[${i}]`));
    });
    const add = admin ? h('button', {type: 'button', class: 'btn small', 'data-test': 'config-array-add',
                                     onclick: () => {
                                       const arr = at(working, pointer);
                                       // A copy of the last item is the best template we have.
                                       arr.push(arr.length ? clone(arr[arr.length - 1]) : '');
                                       changedStructure();
                                     }}, list.length ? `Add a copy of ${key}[${list.length - 1}]` : `Add to ${key}`) : null;
    return [h('div', {class: 'array'}, items.length ? items : h('p', {class: 'muted small'}, 'empty')), add];
  }

  function changedStructure() {
    renderForm();
    showErrors(lastErrors);
    updateDirty();
  }

  // The input of one value; its row gets the "changed" mark when it differs from the running one.
  function leafInput(value, pointer, label) {
    const type = typeOf(value);
    const id = `cfg-${++serial}`;
    if (type === 'boolean') {
      const input = h('input', {type: 'checkbox', id, checked: value, disabled: !admin, 'data-pointer': pointer,
                                'data-type': 'boolean'});
      input.addEventListener('change', () => edited(input, pointer, input.checked));
      return input;
    }
    const secret = value === kRedacted || kSecretKeys.has(tokens(pointer).pop());
    const input = h('input', {id, type: secret ? 'password' : 'text', value: value === null ? '' : String(value),
                              autocomplete: secret ? 'new-password' : 'off', spellcheck: 'false', readonly: !admin,
                              inputmode: type === 'number' ? 'decimal' : undefined,
                              placeholder: type === 'null' ? 'null' : secret ? 'unchanged' : undefined,
                              'aria-label': label, 'data-pointer': pointer, 'data-type': type});
    input.addEventListener('input', () => edited(input, pointer, coerce(input.value, type)));
    return input;
  }

  function leaf(value, pointer, key) {
    const input = leafInput(value, pointer);
    const label = h('label', {for: input.id, class: 'key', title: pointer}, key);
    const slot = errorSlot(pointer);
    const row = typeOf(value) === 'boolean'
      ? h('div', {class: 'leaf check', 'data-leaf': pointer}, input, label, slot)
      : h('div', {class: `leaf ${typeOf(value) === 'number' ? 'number' : ''}`, 'data-leaf': pointer}, label, input, slot);
    if (!same(value, at(original, pointer))) row.classList.add('changed');
    return row;
  }

  function edited(input, pointer, value) {
    setAt(working, pointer, value);
    const row = input.closest('[data-leaf]');
    row.classList.toggle('changed', !same(value, at(original, pointer)));
    clearError(pointer);
    updateDirty();
  }

  // --- Errors at the field: the element with the error's pointer, else its nearest ancestor.
  function clearErrors() {
    for (const el of main.querySelectorAll('.field-error')) el.remove();
    for (const el of main.querySelectorAll('[aria-invalid]')) {
      if (el !== raw) el.removeAttribute('aria-invalid');
    }
    for (const el of main.querySelectorAll('.invalid')) el.classList.remove('invalid');
  }

  function clearError(pointer) {
    for (const el of main.querySelectorAll(`.field-error[data-for="${CSS.escape(pointer)}"]`)) el.remove();
    const input = formPanel.querySelector(`input[data-pointer="${CSS.escape(pointer)}"]`);
    if (input) {
      input.removeAttribute('aria-invalid');
      input.closest('[data-leaf]')?.classList.remove('invalid');
    }
  }

  function findSlot(pointer) {
    let p = pointer;
    for (;;) {
      const slot = formPanel.querySelector(`[data-slot="${CSS.escape(p)}"]`);
      if (slot) return {slot, exact: p === pointer, at: p};
      if (p === '') return null;
      p = parent(p);
    }
  }

  function showErrors(errors) {
    clearErrors();
    let n = 0;
    for (const e of errors || []) {
      const pointer = typeof e.pointer === 'string' ? e.pointer : '';
      const found = findSlot(pointer);
      if (!found) continue;
      const id = `err-${++n}`;
      const rest = found.exact ? '' : `${pointer.slice(found.at.length).replace(/^\//, '')}: `;
      found.slot.appendChild(h('p', {class: 'field-error', id, 'data-test': 'field-error', 'data-for': pointer,
                                     'data-pointer-error': pointer},
        `${rest}${e.message}`, e.source ? h('span', {class: 'muted small'}, ` (${e.source})`) : null));
      const input = formPanel.querySelector(`input[data-pointer="${CSS.escape(found.at)}"]`);
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', id);
        input.closest('[data-leaf]')?.classList.add('invalid');
      } else {
        const box = formPanel.querySelector(`[data-pointer="${CSS.escape(found.at)}"]`);
        box?.classList.add('invalid');
        if (box && box.tagName === 'DETAILS') box.open = true;
      }
    }
  }

  function focusError(pointer) {
    if (tab !== 'form') switchTab('form');
    const found = findSlot(pointer);
    if (!found) return;
    const input = formPanel.querySelector(`input[data-pointer="${CSS.escape(found.at)}"]`);
    const target = input || found.slot;
    for (let d = target.closest('details'); d; d = d.parentElement?.closest('details')) d.open = true;
    target.scrollIntoView({block: 'center'});
    if (input) input.focus();
  }

  function showCheck(r, {title} = {}) {
    const errors = r.errors || [];
    const warnings = r.warnings || [];
    lastErrors = errors;
    showErrors(errors);
    const valid = r.valid !== false && errors.length === 0;
    const list = (items, kind) => h('ul', {class: 'issues'}, items.map((e) => h('li', {'data-test': kind === 'bad' ? 'check-error' : 'check-warning',
                                                                                        'data-pointer-error': e.pointer || ''},
      e.pointer ? h('button', {type: 'button', class: 'link mono', onclick: () => focusError(e.pointer)}, e.pointer) : null,
      ' ', typeof e === 'string' ? e : e.message, e.source ? h('span', {class: 'muted small'}, ` (${e.source})`) : null)));
    replace(results, h('div', {class: `notice ${valid ? 'ok' : 'bad'}`, 'data-test': 'config-check-result',
                               'data-valid': String(valid), role: valid ? 'status' : 'alert'},
      h('strong', null, title || (valid ? 'The document is valid.' : `${errors.length} error${errors.length === 1 ? '' : 's'}.`)),
      errors.length ? list(errors, 'bad') : null,
      warnings.length ? [h('div', {class: 'muted'}, 'Warnings:'), list(warnings, 'warn')] : null));
  }

  function setBusy(on, text = '') {
    busy = on;
    busyNote.hidden = !on;
    busyNote.textContent = text;
    main.setAttribute('aria-busy', String(on));
    updateButtons();
  }

  async function check() {
    const doc = currentDocument();
    if (doc === undefined) return;
    setBusy(true, 'Checking…');
    try {
      showCheck(await post('/api/config/check', {document: doc}));
    } catch (e) {
      replace(results, h('div', {class: 'notice bad', role: 'alert'}, `Check failed: ${e.message}`));
    } finally {
      setBusy(false);
    }
  }

  function diffTable(changes) {
    const show = (v) => (v === undefined ? '' : JSON.stringify(v));
    return table([{label: 'Change'}, {label: 'Where'}, {label: 'Before'}, {label: 'After'}],
      changes.length ? changes.map((c) => h('tr', {'data-test': 'diff-row', 'data-pointer': c.pointer, 'data-op': c.op},
        h('td', null, badge(c.op, c.op === 'add' ? 'ok' : c.op === 'remove' ? 'bad' : 'warn')),
        h('td', {class: 'mono'}, c.pointer),
        h('td', {class: 'mono wrap diff-old'}, show(c.old)),
        h('td', {class: 'mono wrap diff-new'}, show(c.new))))
        : [emptyRow(4, 'No changes: the document is the running one.')],
      {'data-test': 'config-diff-table'});
  }

  async function diffOf(doc) {
    const r = await post('/api/config/diff', {document: doc});
    return listOf(r, 'changes');
  }

  async function review() {
    const doc = currentDocument();
    if (doc === undefined) return;
    setBusy(true, 'Comparing…');
    try {
      const changes = await diffOf(doc);
      await ctx.openDialog({title: `Changes against revision ${revision ?? ''}`, body: diffTable(changes), wide: true,
                            test: 'diff-dialog'});
    } catch (e) {
      ctx.toast(`Review failed: ${e.message}`, 'bad');
    } finally {
      setBusy(false);
    }
  }

  function confirmWindow(doc) {
    const t = Number(doc?.web?.confirm_timeout ?? original?.web?.confirm_timeout);
    return Number.isFinite(t) && t > 0 ? t : 90;
  }

  async function apply(withConfirm) {
    const doc = currentDocument();
    if (doc === undefined) return;
    setBusy(true, 'Comparing…');
    let changes;
    try {
      changes = await diffOf(doc);
    } catch (e) {
      setBusy(false);
      ctx.toast(`Apply failed: ${e.message}`, 'bad');
      return;
    }
    setBusy(false);
    const comment = h('input', {type: 'text', maxlength: 200, placeholder: 'what and why (optional)', 'data-test': 'apply-comment'});
    const window_ = confirmWindow(original);
    const body = [
      h('p', null, changes.length ? `${changes.length} change${changes.length === 1 ? '' : 's'} will be written, ` +
                                    'and each daemon whose section changed is reloaded.'
                                  : 'The document has no changes; applying writes it as a new revision.'),
      withConfirm
        ? h('div', {class: 'notice info'}, `You then have ${fmtDuration(window_)} to confirm. Without a confirmation the ` +
                                           'previous configuration comes back by itself, so a change that cuts you off undoes itself.')
        : h('div', {class: 'notice warn'}, 'Without confirmation, the change stays even if it cuts you off from the box.'),
      changes.length ? h('details', null, h('summary', null, 'Show the changes'), diffTable(changes)) : null,
      field('Comment', comment),
    ];
    const go = await ctx.openDialog({
      title: withConfirm ? 'Apply with confirmation' : 'Apply without confirmation', body, wide: true,
      test: 'apply-dialog',
      actions: [{label: 'Cancel', value: null},
                {label: withConfirm ? 'Apply' : 'Apply now', kind: withConfirm ? 'primary' : 'danger', submit: true,
                 test: 'apply-submit', value: () => ({comment: comment.value.trim()})}],
    });
    if (!go) return;
    setBusy(true, 'Applying… the daemons are reloading (up to 20 s).');
    try {
      const r = await post('/api/config/apply', {document: doc, comment: go.comment || undefined, confirm: withConfirm},
                           {timeout: 90000});
      await load();
      showApplied(r, withConfirm);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && e.body && Array.isArray(e.body.errors)) {
        const n = e.body.errors.length;
        showCheck({valid: false, errors: e.body.errors, warnings: e.body.warnings || []},
                  {title: `${n} error${n === 1 ? '' : 's'}: nothing was applied.`});
      } else if (e instanceof ApiError && e.status === 409) {
        replace(results, h('div', {class: 'notice warn', role: 'alert', 'data-test': 'apply-conflict'},
                           `${e.message}. Confirm or roll back the pending apply first.`));
      } else {
        replace(results, h('div', {class: 'notice bad', role: 'alert'}, `Apply failed: ${e.message}`));
      }
    } finally {
      setBusy(false);
    }
  }

  function showApplied(r, withConfirm) {
    const reloaded = listOf(r.reloaded, 'reloaded');
    const kind = (res) => (res === 'reloaded' || res === 'unchanged' ? 'ok' : res === 'down' ? 'warn' : 'bad');
    const anyFailed = reloaded.some((x) => x.result === 'failed');
    replace(results, h('div', {class: `notice ${anyFailed ? 'warn' : 'ok'}`, role: 'status', 'data-test': 'apply-result',
                               'data-revision': String(r.revision ?? '')},
      h('strong', null, `Revision ${r.revision ?? ''} applied${withConfirm && r.pending ? ': confirm it within the window.' : '.'}`),
      reloaded.length ? h('ul', {class: 'issues'}, reloaded.map((x) => h('li', {'data-test': 'apply-reloaded', 'data-name': x.name},
        h('strong', null, x.name), ' ', badge(x.result, kind(x.result)), x.error ? ` ${x.error}` : ''))) : null,
      Array.isArray(r.restart_required) && r.restart_required.length
        ? h('p', null, `Restart needed to take effect: ${r.restart_required.join(', ')} (listen addresses, ports or state directory).`) : null));
    if ('pending' in r) ctx.setPending(r.pending);
    awaiting = withConfirm && r.pending ? r.revision : null;
  }

  // After the window of our own apply ended: say how (confirmed here or elsewhere, or rolled back).
  function reportWindowEnd() {
    if (awaiting === null || ctx.pending()) return;
    const rev = awaiting;
    awaiting = null;
    replace(results, String(revision) === String(rev)
      ? h('div', {class: 'notice ok', role: 'status', 'data-test': 'window-result', 'data-result': 'confirmed'},
          `Revision ${rev} is confirmed.`)
      : h('div', {class: 'notice warn', role: 'status', 'data-test': 'window-result', 'data-result': 'rolled_back'},
          `Revision ${rev} was not confirmed and was rolled back: revision ${revision} runs again.`));
  }

  async function discard() {
    if (original === null || same(working, original)) {
      ctx.toast('Nothing to discard.', 'info');
      return;
    }
    if (!await ctx.confirmDialog('Discard changes?', 'Your edits are dropped and the running configuration is shown again.',
                                 {confirmLabel: 'Discard', danger: true})) return;
    working = clone(original);
    lastErrors = [];
    replace(results);
    render();
  }

  // --- History.
  async function loadHistory() {
    replace(historyPanel, h('p', {class: 'muted'}, 'Loading…'));
    try {
      const list = listOf(await get('/api/config/revisions'), 'revisions');
      const stateKind = {applied: 'info', pending: 'warn', confirmed: 'ok', rolled_back: 'bad', reverted: 'muted'};
      replace(historyPanel, table([{label: '#', cls: 'num'}, {label: 'Time'}, {label: 'User'}, {label: 'Comment'},
                                   {label: 'State'}, {label: '', cls: 'actions'}],
        list.length ? list.map((rev) => h('tr', {'data-test': 'revision-row', 'data-revision': rev.id, 'data-state': rev.state},
          h('td', {class: 'num'}, rev.id),
          h('td', {class: 'nowrap'}, fmtTime(rev.time)),
          h('td', null, rev.user || '–'),
          h('td', {class: 'wrap'}, rev.comment || h('span', {class: 'muted'}, '–')),
          h('td', null, h('span', {class: 'chips'}, badge((rev.state || '').replace('_', ' '), stateKind[rev.state] || 'muted'),
            ('current' in rev ? rev.current : String(rev.id) === String(revision)) ? badge('running', 'info') : null)),
          h('td', {class: 'actions'},
            h('button', {type: 'button', class: 'btn small', 'data-test': 'revision-view', onclick: () => viewRevision(rev)}, 'View'),
            admin ? h('button', {type: 'button', class: 'btn small', 'data-test': 'revision-revert',
                                 onclick: () => revert(rev)}, 'Revert to this') : null)))
          : [emptyRow(6, 'No revisions yet: the first apply makes one.')],
        {'data-test': 'revisions-table'}));
    } catch (e) {
      replace(historyPanel, h('div', {class: 'notice bad', role: 'alert'}, `History could not be read: ${e.message}`));
    }
  }

  async function viewRevision(rev) {
    try {
      const r = await get(`/api/config/revisions/${encodeURIComponent(rev.id)}`);
      const doc = r.document ?? r;
      let changes = null;
      if (admin) {
        try { changes = await diffOf(doc); } catch { changes = null; }
      }
      await ctx.openDialog({
        title: `Revision ${rev.id}`, wide: true, test: 'revision-dialog',
        body: [h('p', {class: 'muted'}, `${fmtTime(rev.time)} by ${rev.user || '–'}${rev.comment ? `: ${rev.comment}` : ''}`),
               changes ? [h('h3', null, 'Going back to it would change'), diffTable(changes)] : null,
               h('details', {open: !changes}, h('summary', null, 'Document'), h('pre', {class: 'code'}, JSON.stringify(doc, null, 2)))],
      });
    } catch (e) {
      ctx.toast(e.message, 'bad');
    }
  }

  async function revert(rev) {
    const withConfirm = h('input', {type: 'checkbox', checked: true, id: 'revert-confirm', 'data-test': 'revert-confirm'});
    const go = await ctx.openDialog({
      title: `Revert to revision ${rev.id}?`, test: 'revert-dialog',
      body: [h('p', null, 'That document is applied as a new revision, and the daemons whose section changes are reloaded.'),
             h('div', {class: 'leaf check'}, withConfirm, h('label', {for: 'revert-confirm'}, 'With a confirmation window'))],
      actions: [{label: 'Cancel', value: null},
                {label: 'Revert', kind: 'primary', submit: true, test: 'revert-submit', value: () => ({confirm: withConfirm.checked})}],
    });
    if (!go) return;
    setBusy(true, 'Reverting…');
    try {
      const r = await post(`/api/config/revisions/${encodeURIComponent(rev.id)}/revert`, go, {timeout: 90000});
      await load();
      showApplied(r, go.confirm);
      loadHistory();
    } catch (e) {
      ctx.toast(`Revert failed: ${e.message}`, 'bad');
    } finally {
      setBusy(false);
    }
  }

  function onConfigChanged() {
    if (busy) return;  // our own apply: it reloads when it is done
    if (working !== null && original !== null && !same(working, original)) {
      stale = true;
      replace(staleBox, h('div', {class: 'notice warn', 'data-test': 'config-stale'},
        'The running configuration changed while you were editing. ',
        h('button', {type: 'button', class: 'btn small', onclick: () => load()}, 'Load the running config (drops your edits)')));
    } else {
      load().then(reportWindowEnd);
    }
    if (tab === 'history') loadHistory();
  }

  const offPending = ctx.bus.on('pending', () => updateButtons());
  load().then(() => { if (tab === 'history') loadHistory(); });

  return {
    config: onConfigChanged,
    unmount() { offPending(); },
  };
}
