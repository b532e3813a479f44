// Users (admins only): accounts with their role, adding and deleting them, passwords, and the
// dashboard's HTTPS certificate (upload a certificate and key, or go back to the self-signed one).
import {h, replace, card, field, select, badge, table, emptyRow, facts, fmtTime, listOf} from './dom.js';
import {get, post, put, del} from './net.js';

export function mount(main, ctx) {
  const usersBox = h('div', null, h('p', {class: 'muted'}, 'Loading…'));
  const tlsBox = h('div', null, h('p', {class: 'muted'}, 'Loading…'));

  const name = h('input', {autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false', required: true,
                           pattern: '[A-Za-z0-9._@\\-]{1,64}', title: 'letters, digits and . _ @ -', 'data-test': 'user-new-name'});
  const password = h('input', {type: 'password', autocomplete: 'new-password', minlength: 10, required: true,
                               placeholder: 'at least 10 characters', 'data-test': 'user-new-password'});
  const role = select([['viewer', 'viewer (read only)'], ['admin', 'admin']], {'data-test': 'user-new-role'});
  const addForm = h('form', {class: 'toolbar', 'aria-label': 'Add a user', onsubmit: addUser},
    field('Name', name), field('Password', password), field('Role', role),
    h('div', {class: 'field toolbar-buttons'}, h('button', {type: 'submit', class: 'btn primary', 'data-test': 'user-add'}, 'Add user')));

  replace(main, h('div', {class: 'page-head'}, h('h1', null, 'Users')),
    card('Users', [usersBox, h('h3', null, 'Add a user'), addForm], {test: 'users-card'}),
    card('HTTPS certificate', tlsBox, {test: 'tls-card'}));

  async function loadUsers() {
    try {
      const list = listOf(await get('/api/users'), 'users');
      replace(usersBox, table([{label: 'Name'}, {label: 'Role'}, {label: 'Created'}, {label: '', cls: 'actions'}],
        list.length ? list.map((u) => h('tr', {'data-test': 'user-row', 'data-user': u.name},
          h('td', null, h('strong', null, u.name), u.name === ctx.session.user ? h('span', {class: 'muted small'}, ' (you)') : null),
          h('td', null, badge(u.role, u.role === 'admin' ? 'info' : 'muted')),
          h('td', {class: 'nowrap'}, u.created ? fmtTime(u.created) : '–'),
          h('td', {class: 'actions'},
            h('button', {type: 'button', class: 'btn small', 'data-test': 'user-password', onclick: () => changePassword(u)}, 'Set password'),
            h('button', {type: 'button', class: 'btn small danger-outline', 'data-test': 'user-delete',
                         disabled: u.name === ctx.session.user, onclick: () => removeUser(u)}, 'Delete'))))
          : [emptyRow(4, 'No users.')], {'data-test': 'users-table'}));
    } catch (e) {
      replace(usersBox, h('div', {class: 'notice bad', role: 'alert'}, `Users could not be read: ${e.message}`));
    }
  }

  async function addUser(e) {
    e.preventDefault();
    if (!addForm.reportValidity()) return;
    try {
      await post('/api/users', {name: name.value.trim(), password: password.value, role: role.value});
      ctx.toast(`User ${name.value.trim()} added.`, 'ok');
      name.value = '';
      password.value = '';
      loadUsers();
    } catch (ex) {
      ctx.toast(`Adding the user failed: ${ex.message}`, 'bad');
    }
  }

  async function changePassword(u) {
    const own = u.name === ctx.session.user;
    const current = h('input', {type: 'password', autocomplete: 'current-password', required: true});
    const next = h('input', {type: 'password', autocomplete: 'new-password', minlength: 10, required: true, 'data-test': 'password-new'});
    const again = h('input', {type: 'password', autocomplete: 'new-password', minlength: 10, required: true});
    const value = await ctx.openDialog({
      title: own ? 'Change your password' : `Set the password of ${u.name}`, test: 'password-dialog',
      body: [own ? field('Current password', current) : null, field('New password', next, 'At least 10 characters.'),
             field('New password again', again),
             h('p', {class: 'muted small'}, own ? 'Your other sessions end.' : `The sessions of ${u.name} end.`)],
      actions: [{label: 'Cancel', value: null},
                {label: 'Save', kind: 'primary', submit: true, value: (form) => {
                  again.setCustomValidity(again.value === next.value ? '' : 'The two passwords differ.');
                  return form.reportValidity() ? {password: next.value, current: own ? current.value : undefined} : undefined;
                }}],
    });
    if (!value) return;
    try {
      await post(`/api/users/${encodeURIComponent(u.name)}/password`, value);
      ctx.toast('Password changed.', 'ok');
    } catch (e) {
      ctx.toast(`Changing the password failed: ${e.message}`, 'bad');
    }
  }

  async function removeUser(u) {
    if (!await ctx.confirmDialog(`Delete ${u.name}?`, 'The account and its sessions end now.',
                                 {confirmLabel: 'Delete', danger: true})) return;
    try {
      await del(`/api/users/${encodeURIComponent(u.name)}`);
      ctx.toast(`User ${u.name} deleted.`, 'ok');
    } catch (e) {
      ctx.toast(`Deleting failed: ${e.message}`, 'bad');
    }
    loadUsers();
  }

  async function loadTls() {
    try {
      const c = await get('/api/tls');
      const certificate = h('textarea', {class: 'pem', rows: 6, spellcheck: 'false', required: true,
                                         placeholder: '-----BEGIN CERTIFICATE-----', 'data-test': 'tls-certificate'});
      const key = h('textarea', {class: 'pem', rows: 6, spellcheck: 'false', required: true,
                                 placeholder: '-----BEGIN PRIVATE KEY-----', 'data-test': 'tls-key'});
      const upload = h('form', {'aria-label': 'Upload a certificate', onsubmit: async (e) => {
        e.preventDefault();
        if (!upload.reportValidity()) return;
        try {
          await put('/api/tls', {certificate: certificate.value, key: key.value});
          ctx.toast('Certificate installed: new connections use it.', 'ok');
          loadTls();
        } catch (ex) {
          ctx.toast(`The certificate was not installed: ${ex.message}`, 'bad');
        }
      }},
        field('Certificate (PEM, leaf first, chain allowed)', certificate),
        field('Private key (PEM)', key),
        h('div', {class: 'toolbar'}, h('button', {type: 'submit', class: 'btn primary'}, 'Install'),
          c.uploaded ? h('button', {type: 'button', class: 'btn', onclick: async () => {
            if (!await ctx.confirmDialog('Go back to the self-signed certificate?', 'The uploaded certificate and key are deleted.',
                                         {confirmLabel: 'Remove', danger: true})) return;
            try {
              await del('/api/tls');
              ctx.toast('Back to the self-signed certificate.', 'ok');
              loadTls();
            } catch (ex) {
              ctx.toast(ex.message, 'bad');
            }
          }}, 'Use the self-signed certificate') : null));
      replace(tlsBox, facts([
        ['In use', c.uploaded ? badge('uploaded', 'ok') : badge('self-signed', 'warn'), 'tls-kind'],
        ['Subject', c.subject],
        ['Issuer', c.issuer],
        ['Valid', `${fmtTime(c.not_before)} – ${fmtTime(c.not_after)}`],
        ['Names', (c.names || []).join(', ') || '–'],
        ['SHA-256', h('span', {class: 'mono wrap'}, c.fingerprint_sha256)],
      ]), h('details', {class: 'upload-cert'}, h('summary', null, 'Upload a certificate'), upload));
    } catch (e) {
      replace(tlsBox, h('div', {class: 'notice bad', role: 'alert'}, `The certificate could not be read: ${e.message}`));
    }
  }

  loadUsers();
  loadTls();
  return {};
}
