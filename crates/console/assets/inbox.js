// The approvals inbox: requests waiting for the signed-in approver (approve or deny with a
// comment), and the signed-in requester's own requests with their state. It polls the API every
// few seconds, so another approver's decision shows without a reload; what a person is typing
// and where the focus is survive each refresh.

import { get, post, problem } from './api.js';
import { el, replace, duration, say } from './dom.js';

const POLL_MS = 3000;

function mine(r, me) {
  return r.shape.requester.subject === me.principal.subject && r.shape.requester.issuer === me.principal.issuer;
}

function facts(r) {
  const left = (Date.parse(r.status === 'approved' && r.grant_until ? r.grant_until : r.pending_until) - Date.now()) / 1000;
  const approved = r.approved_by.length;
  return el('dl', { class: 'facts' },
    el('dt', {}, 'Requester'), el('dd', { class: 'requester' }, r.shape.requester.subject),
    el('dt', {}, 'Role'), el('dd', {}, r.shape.role),
    el('dt', {}, 'Purpose'), el('dd', { class: 'purpose' }, r.shape.purpose || '(none given)'),
    el('dt', {}, 'Traces'), el('dd', {}, r.shape.traces.join(', ')),
    el('dt', {}, 'Fields'), el('dd', {}, r.shape.fields ? r.shape.fields.join('  ') : 'everything the role’s view holds'),
    el('dt', {}, 'Approvals'), el('dd', { class: 'progress' }, `${approved} of ${r.terms.approvals}`,
      approved ? ` (${r.approved_by.join(', ')})` : ''),
    el('dt', {}, r.status === 'approved' ? 'Grant ends in' : 'Time left'), el('dd', { class: 'left' }, duration(left)),
  );
}

// What a grant would reveal, per request id: the asked-for role's view and the server's
// comparison with the requester's current view (neither changes while a request waits, so it is
// fetched once).
const reveals = new Map();

/**
 * The server's comparison with what the requester is served without the grant (their own view,
 * recorded from their principal when they asked): fields unhidden, masks lifted.
 */
function compared(body) {
  const box = el('div', { class: 'compared' }, el('h4', {}, 'Compared with what the requester sees now'));
  const d = body.reveals;
  if (!d) { box.append(el('p', { class: 'note' }, 'Not known: the request was opened before the gateway recorded the requester’s view.')); return box; }
  const now = d.from_nothing ? 'nothing of this trace without a grant' : `this trace as role ${d.current_role}`;
  const lifted = d.masks.filter((m) => m.lifted);
  box.append(el('dl', { class: 'facts' },
    el('dt', {}, 'Requester sees'), el('dd', { class: 'current-view' }, now),
    el('dt', {}, 'Fields unhidden'), el('dd', { class: 'unhidden' },
      d.from_nothing ? 'everything the granted view holds' : d.reveals_everything ? 'every field outside their view' : '',
      !d.from_nothing && d.deny_lifted.length ? `${d.reveals_everything ? '; ' : ''}deny rules lifted: ${d.deny_lifted.join('  ')}` : '',
      !d.from_nothing && !d.reveals_everything && d.allow_added.length ? `${d.deny_lifted.length ? '; ' : ''}allow rules added: ${d.allow_added.join('  ')}` : '',
      !d.from_nothing && !d.reveals_everything && !d.deny_lifted.length && !d.allow_added.length ? 'none' : ''),
    el('dt', {}, 'Masks lifted'), el('dd', { class: 'lifted' }, lifted.length
      ? el('details', {}, el('summary', {}, `${lifted.length} detector${lifted.length === 1 ? '' : 's'}`), lifted.map((m) => `${m.detector}: ${m.from} → ${m.to}`).join(', '))
      : 'none')));
  return box;
}

function revealed(r) {
  const box = el('div', { class: 'reveals', 'aria-live': 'off' }, el('h4', {}, 'A grant would reveal'));
  const fill = (body) => {
    const v = body && body.view;
    if (!v) { box.append(el('p', { class: 'note' }, 'The role is no longer in the policy.')); return; }
    const ops = v.masking.operators || {};
    box.append(el('dl', { class: 'facts' },
      el('dt', {}, 'Fields'), el('dd', { class: 'reveal-fields' }, `allow ${v.fields.allow.join('  ') || 'nothing'}`,
        v.fields.deny.length ? `; deny ${v.fields.deny.join('  ')}` : ''),
      el('dt', {}, 'Unmasked'), el('dd', { class: 'reveal-off' }, !ops.off ? 'nothing: every detector still masks'
        : el('details', {}, el('summary', {}, Object.keys(ops).length === 1 ? `everything: all ${ops.off.length} detectors are off` : `${ops.off.length} detectors`),
          ops.off.join(', '))),
      Object.entries(ops).filter(([op]) => op !== 'off').map(([op, names]) => [el('dt', {}, `Masked (${op})`), el('dd', {}, names.join(', '))])));
    box.append(compared(body));
  };
  if (reveals.has(r.id)) fill(reveals.get(r.id));
  else get(`/v1/access-requests/${encodeURIComponent(r.id)}/reveals`).then((x) => { if (x.ok) { reveals.set(r.id, x.body); fill(x.body); } });
  return box;
}

function card(r, me, refresh) {
  const id = `req-${r.id}`;
  const box = el('article', { class: `request ${r.status}`, id, 'data-request': r.id, 'aria-labelledby': `${id}-title` },
    el('h3', { id: `${id}-title` }, `${r.shape.role} read of ${r.shape.traces.join(', ')}`,
      el('span', { class: `badge ${r.status}` }, r.status)),
    facts(r));
  if (r.status === 'pending') box.append(revealed(r));
  if (r.you_may_decide) {
    const comment = el('textarea', { id: `${id}-comment`, name: 'comment', rows: 2 });
    const act = async (verb) => {
      const text = comment.value.trim();
      if (verb === 'deny' && !text) { say('A denial needs a comment.'); comment.focus(); return; }
      const res = await post(`/v1/access-requests/${encodeURIComponent(r.id)}/${verb}`, text ? { comment: text } : {});
      say(res.ok ? `Request ${r.id}: ${verb === 'approve' ? 'approved' : 'denied'}.` : `Could not ${verb}: ${problem(res)}`);
      refresh();
    };
    box.append(el('div', { class: 'decide' },
      el('label', { for: `${id}-comment` }, 'Comment (required to deny)'), comment,
      el('div', { class: 'actions' },
        el('button', { type: 'button', id: `${id}-approve`, class: 'approve', onclick: () => act('approve') }, 'Approve'),
        el('button', { type: 'button', id: `${id}-deny`, class: 'deny', onclick: () => act('deny') }, 'Deny'))));
  } else if (mine(r, me)) {
    box.append(el('p', { class: 'note own' }, 'Your own request: somebody else must decide on it.'));
    if (r.status === 'approved' && r.shape.traces.length === 1) {
      box.append(el('p', {}, el('a', { href: `#/traces/${encodeURIComponent(r.shape.traces[0])}?request=${encodeURIComponent(r.id)}` }, 'Open the approved read')));
    }
  }
  const said = r.decisions.filter((d) => d.comment);
  if (said.length) {
    box.append(el('ul', { class: 'comments' }, said.map((d) => el('li', {}, `${d.by.subject} (${d.verdict}): `, d.comment))));
  }
  return box;
}

/** The inbox in `view`; returns a handle whose `stop()` ends the polling. */
export function show(view, me) {
  const waiting = el('section', { 'aria-labelledby': 'waiting-title' }, el('h2', { id: 'waiting-title' }, 'Waiting for your decision'));
  const own = el('section', { 'aria-labelledby': 'own-title' }, el('h2', { id: 'own-title' }, 'Your requests'));
  const other = el('section', { 'aria-labelledby': 'other-title' }, el('h2', { id: 'other-title' }, 'Other requests you can see'));
  const lists = [el('div', { id: 'waiting' }), el('div', { id: 'own' }), el('div', { id: 'other' })];
  waiting.append(lists[0]); own.append(lists[1]); other.append(lists[2]);
  replace(view, el('h1', {}, 'Approvals'), waiting, own, other);
  let last = '';
  let timer = null;
  let stopped = false;

  async function refresh() {
    const r = await get('/v1/access-requests');
    if (stopped) return;
    if (!r.ok) { say(`Could not load requests: ${problem(r)}`); return; }
    const text = JSON.stringify(r.body);
    if (text === last) return;
    last = text;
    // Keep what people are typing, and the focus, across the re-render.
    const typed = new Map([...view.querySelectorAll('textarea')].map((t) => [t.id, t.value]));
    const focused = document.activeElement && document.activeElement.id;
    const all = r.body.access_requests;
    const groups = [all.filter((x) => x.you_may_decide), all.filter((x) => !x.you_may_decide && mine(x, me)),
      all.filter((x) => !x.you_may_decide && !mine(x, me))];
    groups.forEach((g, i) => replace(lists[i], g.length ? g.map((x) => card(x, me, refresh)) : el('p', { class: 'empty' }, 'Nothing here.')));
    for (const [id, value] of typed) { const t = document.getElementById(id); if (t) t.value = value; }
    if (focused) { const f = document.getElementById(focused); if (f) f.focus(); }
  }

  async function loop() {
    await refresh();
    if (!stopped) timer = setTimeout(loop, POLL_MS);
  }
  loop();
  return { stop() { stopped = true; clearTimeout(timer); } };
}
