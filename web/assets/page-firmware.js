// Firmware: what runs now (version, build, board). Upload, verification and flashing come with
// the firmware image; the page says so instead of offering a control that does nothing.
import {h, replace, card, facts} from './dom.js';
import {get} from './net.js';

export function mount(main) {
  const body = h('div', null, h('p', {class: 'muted'}, 'Loading…'));
  replace(main, h('div', {class: 'page-head'}, h('h1', null, 'Firmware')), body);

  get('/api/firmware').then((f) => {
    replace(body,
      card('Running firmware', facts([
        ['Version', f.version, 'fw-version'],
        ['Build', f.build, 'fw-build'],
        ['Board', f.board, 'fw-board'],
      ]), {test: 'firmware-card'}),
      card('Upgrade', [
        h('div', {class: 'notice info', 'data-test': 'fw-upgrade'}, `Firmware upgrade: ${f.upgrade || 'not available'}.`),
        h('p', {class: 'muted'}, 'With the firmware image, this page takes an image file, checks its signature, board and ' +
                                 'compatibility version before anything is written, and can keep the settings.'),
        h('fieldset', {class: 'upload', disabled: true},
          h('legend', null, 'Image'),
          h('label', {for: 'fw-file'}, 'Firmware image file'),
          h('input', {type: 'file', id: 'fw-file', disabled: true}),
          h('div', {class: 'leaf check'}, h('input', {type: 'checkbox', id: 'fw-keep', checked: true, disabled: true}),
            h('label', {for: 'fw-keep'}, 'Keep settings')),
          h('button', {type: 'button', class: 'btn', disabled: true}, 'Verify image')),
      ], {test: 'upgrade-card'}));
  }).catch((e) => {
    replace(body, h('div', {class: 'notice bad', role: 'alert'}, `Firmware information could not be read: ${e.message}`));
  });
  return {};
}
