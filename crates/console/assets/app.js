// The console's entry point: who is signed in, then one view per hash route —
// `#/inbox` (approvals), `#/traces` and `#/traces/<id>` (the trace viewer), `#/audit`.

import { whoami, get, post, problem } from './api.js';
import { el, replace, say } from './dom.js';
import * as inbox from './inbox.js';
import * as viewer from './viewer.js';
import * as audit from './audit.js';

let me = null;
let current = null;

async function signedOut() {
  document.getElementById('signin').hidden = false;
  // Which sign-ins this gateway offers: a plain, unauthenticated question.
  const r = await get('/auth/methods');
  const methods = (r.ok && r.body) || {};
  document.getElementById('signin-sso').hidden = !methods.browser;
  document.getElementById('signin-dev').hidden = !methods.dev;
  document.getElementById('signin-none').hidden = Boolean(methods.browser || methods.dev);
}

function showWho() {
  const p = me.principal;
  const roles = me.roles.length ? me.roles.join(', ') : 'no role';
  replace(document.getElementById('who'), `${p.subject} · ${roles}`);
  const out = document.getElementById('signout');
  out.hidden = false;
  out.addEventListener('click', async () => {
    const r = await post('/auth/logout', {});
    if (r.ok) location.assign('/console/');
    else say(`Sign-out failed: ${problem(r)}`);
  });
}

function route() {
  if (current && current.stop) current.stop();
  const view = document.getElementById('view');
  // `#main` is the skip link's target, not a view.
  const hash = location.hash && location.hash !== '#main' ? location.hash : '#/inbox';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  for (const a of document.querySelectorAll('nav a')) {
    if (path.startsWith(a.getAttribute('href').slice(1))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (path === '/inbox') current = inbox.show(view, me);
  else if (path === '/traces') current = viewer.showIndex(view, me);
  else if (path === '/audit') current = audit.show(view, me, params);
  else if (path.startsWith('/traces/')) current = viewer.showTrace(view, me, decodeURIComponent(path.slice(8)), params);
  else { replace(view, el('h1', {}, 'Not found'), el('p', {}, 'No such page in the console.')); current = null; }
}

async function start() {
  try {
    me = await whoami();
  } catch (e) {
    say(`The gateway could not say who you are: ${e.message}`);
    return;
  }
  if (!me) return signedOut();
  showWho();
  window.addEventListener('hashchange', () => {
    // The skip link only moves the focus (the browser does that); every other change is a view.
    if (location.hash === '#main') return;
    route();
    document.getElementById('main').focus();
  });
  route();
}

start();
