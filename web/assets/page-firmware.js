// Firmware: what runs now and what each A/B slot holds; an upgrade in three steps (upload a
// bundle, which is verified before anything is written, then flash the inactive slot, then
// reboot) and the settings backup and restore. fw-upgrade does the work (docs/firmware.md).
import {h, replace, card, facts, badge, meter, fmtBytes} from './dom.js';
import {get, post, upload} from './net.js';

function slotRows(status) {
  if (!status || status.error) {
    return h('div', {class: 'notice warn', 'data-test': 'fw-status-error'},
             `The slots could not be read: ${status ? status.message : 'no answer'}`);
  }
  const rows = ['A', 'B'].map((name) => {
    const s = status.slots[name] || {};
    const marks = [];
    if (name === status.running) marks.push(badge('running', 'ok'));
    if (name === status.next) marks.push(badge('next boot', 'info'));
    marks.push(s.ok ? badge('complete', 'ok') : badge('not bootable', 'bad'));
    if (s.tried) marks.push(badge('on trial', 'warn'));
    return h('tr', {'data-test': `fw-slot-${name}`},
             h('td', null, name), h('td', null, s.version || '—'), h('td', null, ...marks));
  });
  return h('table', {class: 'table'},
           h('thead', null, h('tr', null, h('th', null, 'Slot'), h('th', null, 'Version'), h('th', null, 'State'))),
           h('tbody', null, ...rows));
}

export function mount(main) {
  const body = h('div', null, h('p', {class: 'muted'}, 'Loading…'));
  replace(main, h('div', {class: 'page-head'}, h('h1', null, 'Firmware')), body);
  let timer = null;

  const render = (f) => {
    const keep = h('input', {type: 'checkbox', id: 'fw-keep', checked: true, 'data-test': 'fw-keep'});
    const file = h('input', {type: 'file', id: 'fw-file', accept: '.dstmfw', 'data-test': 'fw-file'});
    const verdict = h('div', {'data-test': 'fw-verdict'});
    const progress = h('div', {'data-test': 'fw-progress'});
    const verifyBtn = h('button', {type: 'button', class: 'btn', 'data-test': 'fw-verify'}, 'Upload and verify');
    const flashBtn = h('button', {type: 'button', class: 'btn primary', 'data-test': 'fw-flash', disabled: !f.staged},
                       'Flash');
    const rebootBtn = h('button', {type: 'button', class: 'btn', 'data-test': 'fw-reboot',
                                   disabled: f.job.state !== 'installed'}, 'Reboot now');

    const showStaged = (m) => replace(verdict, m ? card('Verified bundle', facts([
      ['Version', m.version, 'fw-new-version'], ['Board', m.board], ['Config schema', m.compat_version],
      ['Size', fmtBytes(m.size)], ['SHA-256', m.sha256, 'fw-new-sha256'], ['Target slot', m.target],
      ['Settings', m.keep_settings ? 'kept' : 'reset to the defaults']]), {test: 'fw-staged'}) : '');
    const showJob = (j) => {
      if (j.state === 'installing') {
        const label = `Writing slot: ${fmtBytes(j.written)} of ${fmtBytes(j.total)}`;
        replace(progress, meter(j.total ? j.written / j.total : 0, label, {class: 'meter ok'}),
                h('span', {class: 'muted'}, label));
      } else if (j.state === 'installed') {
        replace(progress, h('div', {class: 'notice ok', 'data-test': 'fw-installed'},
                            `Installed ${j.result.version} into slot ${j.result.target}. Reboot to start it; ` +
                            'if it does not come up healthy, the next boot returns to this firmware.'));
      } else if (j.state === 'failed') {
        replace(progress, h('div', {class: 'notice bad', role: 'alert', 'data-test': 'fw-failed'},
                            `The install failed: ${j.result.message || 'unknown error'}. The running firmware stays.`));
      } else {
        replace(progress, '');
      }
      if (j.rebooting) replace(progress, h('div', {class: 'notice info'}, 'Rebooting…'));
    };
    showStaged(f.staged);
    showJob(f.job);

    verifyBtn.addEventListener('click', async () => {
      if (!file.files.length) return;
      verifyBtn.disabled = true;
      replace(verdict, h('p', {class: 'muted'}, 'Uploading and verifying…'));
      try {
        const r = await upload(`/api/firmware/upload?keep_settings=${keep.checked}`, file.files[0]);
        showStaged(r.verified);
        flashBtn.disabled = false;
      } catch (e) {
        replace(verdict, h('div', {class: 'notice bad', role: 'alert', 'data-test': 'fw-refused'},
                           `Refused, nothing was written: ${e.message}`));
        flashBtn.disabled = true;
      } finally {
        verifyBtn.disabled = false;
      }
    });
    flashBtn.addEventListener('click', async () => {
      flashBtn.disabled = true;
      try {
        const r = await post('/api/firmware/install', {keep_settings: keep.checked});
        showJob(r.job);
        poll();
      } catch (e) {
        replace(progress, h('div', {class: 'notice bad', role: 'alert'}, e.message));
      }
    });
    rebootBtn.addEventListener('click', async () => {
      try {
        await post('/api/firmware/reboot', {});
        replace(progress, h('div', {class: 'notice info', 'data-test': 'fw-rebooting'}, 'Rebooting…'));
      } catch (e) {
        replace(progress, h('div', {class: 'notice bad', role: 'alert'}, e.message));
      }
    });

    const restoreFile = h('input', {type: 'file', id: 'fw-restore-file', accept: '.tar', 'data-test': 'fw-restore-file'});
    const restoreOut = h('div', {'data-test': 'fw-restore-result'});
    const restoreBtn = h('button', {type: 'button', class: 'btn', 'data-test': 'fw-restore'}, 'Restore');
    restoreBtn.addEventListener('click', async () => {
      if (!restoreFile.files.length) return;
      try {
        const r = await upload('/api/firmware/restore', restoreFile.files[0]);
        replace(restoreOut, h('div', {class: 'notice ok'}, `Restored ${r.restored.length} files; reboot to use them.`));
      } catch (e) {
        replace(restoreOut, h('div', {class: 'notice bad', role: 'alert'}, `Refused, nothing was replaced: ${e.message}`));
      }
    });

    replace(body,
      card('Running firmware', facts([
        ['Version', f.version, 'fw-version'],
        ['Build', f.build, 'fw-build'],
        ['Board', f.board, 'fw-board'],
      ]), {test: 'firmware-card'}),
      card('Slots', slotRows(f.status), {test: 'fw-slots'}),
      card('Upgrade', [
        h('fieldset', {class: 'upload'},
          h('legend', null, 'Firmware bundle'),
          h('label', {for: 'fw-file'}, 'Bundle file (.dstmfw)'), file,
          h('div', {class: 'leaf check'}, keep, h('label', {for: 'fw-keep'}, 'Keep settings')),
          verifyBtn),
        verdict, h('div', {class: 'actions'}, flashBtn, rebootBtn), progress,
      ], {test: 'upgrade-card'}),
      card('Settings backup', [
        h('p', null, h('a', {href: '/api/firmware/backup', download: 'dstm-settings.tar', class: 'btn',
                             'data-test': 'fw-backup'}, 'Download backup')),
        h('label', {for: 'fw-restore-file'}, 'Backup file (.tar)'), restoreFile, restoreBtn, restoreOut,
      ], {test: 'backup-card'}));

    function poll() {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        try {
          const next = await get('/api/firmware');
          showJob(next.job);
          rebootBtn.disabled = next.job.state !== 'installed';
          if (next.job.state === 'installing') poll();
          else replace(body.querySelector('[data-test=fw-slots] .card-body') || h('div'), slotRows(next.status));
        } catch {
          poll();
        }
      }, 1000);
    }
    if (f.job.state === 'installing') poll();
  };

  get('/api/firmware').then(render).catch((e) => {
    replace(body, h('div', {class: 'notice bad', role: 'alert'}, `Firmware information could not be read: ${e.message}`));
  });
  return {
    unmount() { clearTimeout(timer); },
  };
}
