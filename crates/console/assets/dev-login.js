// The development sign-in page: one submit button per sample identity of the development
// issuer. The form is an ordinary same-origin POST; the gateway checks its Origin.

import { get, problem } from './api.js';
import { el, replace, say } from './dom.js';

async function start() {
  const box = document.getElementById('identities');
  const r = await get('/auth/dev-login');
  if (!r.ok) {
    replace(box, el('p', { class: 'error' }, `Development sign-in is not available: ${problem(r)}`));
    return;
  }
  const list = el('ul', { class: 'identities' });
  for (const who of r.body.identities) {
    const groups = who.groups.length ? who.groups.join(', ') : 'no groups';
    const claims = Object.entries(who.claims || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    list.append(el('li', {},
      el('button', { type: 'submit', name: 'subject', value: who.subject, 'data-subject': who.subject },
        `Sign in as ${who.subject}`),
      el('span', { class: 'note' }, ` ${who.note || ''} (groups: ${groups}${claims ? `; ${claims}` : ''})`)));
  }
  replace(box, list);
  say(`${r.body.identities.length} sample identities`);
}

start();
