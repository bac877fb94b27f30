// The audit explorer: the chain's status (GET /v1/audit/verify) and its newest signed checkpoint
// (GET /v1/audit/checkpoint), GET /v1/audit with its filters (subject, trace, decision, kind, time,
// limit), the route filtered here among what the API returned, each record's full detail, the
// replay of a recorded read (GET /v1/audit/{request_id}/replay: whether the reproduced body
// matches the recorded digest, and the body as it was shown then when the gateway lets this
// auditor see it), and an export link for the same filtered range. Only roles with the `audit`
// action get records; everyone else sees the API's refusal.

import { get, problem } from './api.js';
import { el, replace, say } from './dom.js';
import { documentView } from './viewer.js';

const FILTERS = [
  ['subject', 'Subject', 'text'],
  ['trace_id', 'Trace id', 'text'],
  ['route', 'Route (e.g. /v1/traces/{id})', 'text'],
  ['since', 'From', 'datetime-local'],
  ['until', 'Until', 'datetime-local'],
  ['limit', 'At most', 'number'],
];

function select(name, label, options, value) {
  const id = `a-${name}`;
  return el('div', {}, el('label', { for: id }, label),
    el('select', { id, name }, options.map((o) => el('option', { value: o, selected: o === value }, o || 'any'))));
}

/** The API query of the filters (`route` stays here: the API has no such filter). */
function apiQuery(params) {
  const q = new URLSearchParams();
  for (const k of ['subject', 'trace_id', 'decision', 'kind', 'limit']) if (params.get(k)) q.set(k, params.get(k));
  for (const k of ['since', 'until']) {
    const v = params.get(k);
    if (v) { const d = new Date(v); if (!Number.isNaN(d.getTime())) q.set(k, d.toISOString()); }
  }
  return q;
}

function detail(r) {
  const rows = [
    ['Time', r.time], ['Sequence', r.seq], ['Kind', r.kind], ['Request id', r.request_id],
    ['Principal', r.principal ? `${r.principal.subject} (${r.principal.issuer}, ${r.principal.auth_method}, ${r.principal.credential})` : '—'],
    ['Route', r.request ? `${r.request.method} ${r.request.route}` : '—'],
    ['Traces', r.request && r.request.trace_ids ? r.request.trace_ids.join(', ') : '—'],
    ['Purpose', (r.request && r.request.purpose) || '—'],
    ['Decision', `${r.decision || '—'} (status ${r.status ?? '—'})`], ['Role', r.role || '—'],
    ['Rules', (r.rules || []).join(', ') || '—'],
    ['Masks', (r.masks || []).map((m) => `${m.detector} (${m.operator}) × ${m.count}${m.paths ? ` at ${m.paths.join(', ')}` : ''}`).join('; ') || 'none'],
    ['Approval', r.approval_id || '—'],
    ['Approvers', r.event && r.event.approved_by ? r.event.approved_by.join(', ') : '—'],
    ['Object version', r.object_version || '—'], ['Policy version', r.policy_version || '—'],
    ['Digest sent', r.body_sha256 ? `sha256:${r.body_sha256} (${r.bytes_sent} bytes)` : '—'],
    ['Chain', `hash ${r.hash}, previous ${r.prev_hash}`],
  ];
  const facts = el('dl', { class: 'facts' }, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  const replayable = r.kind === 'request' && r.decision === 'allow' && r.request && r.request.action === 'read' && r.body_sha256;
  return el('div', { class: 'record-detail' }, facts, replayable ? replayBox(r) : null);
}

/** A read's replay: the button, then what the gateway reproduced. */
function replayBox(r) {
  const out = el('div', { class: 'replay-result', 'aria-live': 'polite' });
  const button = el('button', { type: 'button', class: 'replay', id: `replay-${r.seq}` }, 'Replay this read');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(out, el('p', {}, 'Replaying…'));
    const a = await get(`/v1/audit/${encodeURIComponent(r.request_id)}/replay`);
    button.disabled = false;
    if (!a.ok) { replace(out, el('p', { class: 'error', role: 'alert' }, problem(a))); return; }
    const b = a.body;
    const ok = b.result === 'reproduced';
    const verdict = { reproduced: 'Reproduced: the digest matches the record', digest_mismatch: 'MISMATCH: the reproduced body differs from what was sent',
      object_changed: 'Not reproducible: the version served is no longer kept', object_deleted: 'Not reproducible: the trace was deleted',
      not_replayable: 'Not replayable' }[b.result] || b.result;
    const parts = [el('p', { class: ok ? 'chain-ok' : 'chain-broken', 'data-result': b.result }, el('strong', {}, verdict)),
      el('p', { class: 'note' }, b.detail),
      el('p', { class: 'digests' }, `recorded sha256:${b.recorded_sha256 || '—'}, replayed sha256:${b.replayed_sha256 || '—'}`)];
    if (b.body !== null && b.body !== undefined) {
      parts.push(el('section', { class: 'as-shown', 'aria-label': `Trace ${b.trace_id} as it was shown then` },
        el('h3', {}, `As shown to ${r.principal ? r.principal.subject : '?'} (role ${b.role})`), documentView(b.body)));
    } else if (b.body_withheld) {
      parts.push(el('p', { class: 'withheld replay-withheld' }, el('span', { class: 'withheld-tag' }, 'body withheld'), ` ${b.body_withheld}.`));
    }
    replace(out, ...parts);
    say(`Replay: ${verdict}`);
  });
  return el('div', { class: 'replay-box' }, button, out);
}

/** The newest signed checkpoint (GET /v1/audit/checkpoint) and what the verification says of it. */
function checkpoint(c, chainOk, v) {
  const box = el('section', { id: 'checkpoint', 'aria-labelledby': 'checkpoint-title' }, el('h3', { id: 'checkpoint-title' }, 'Latest signed checkpoint'));
  if (!c.ok) { box.append(el('p', { class: 'error' }, problem(c))); return box; }
  const cp = c.body.checkpoint;
  if (!cp) { box.append(el('p', {}, 'None yet: the gateway signs one every so many records and at shutdown.')); return box; }
  const upTo = chainOk && c.body.signature_valid === true && v.last_signed_seq !== null && v.last_signed_seq >= cp.seq;
  box.append(el('dl', { class: 'facts' },
    el('dt', {}, 'Signer key id'), el('dd', { class: 'key-id' }, cp.key_id, cp.key_id === c.body.gateway_key_id ? ' (this gateway\'s key)' : ' (not this gateway\'s key)'),
    el('dt', {}, 'Sequence'), el('dd', { class: 'cp-seq' }, String(cp.seq)),
    el('dt', {}, 'Head hash'), el('dd', { class: 'cp-hash' }, cp.hash),
    el('dt', {}, 'Signed at'), el('dd', {}, String(cp.time)),
    el('dt', {}, 'Kind'), el('dd', {}, cp.kind),
    el('dt', {}, 'Signature'), el('dd', {}, c.body.signature_valid ? 'valid' : 'INVALID')),
  el('p', { class: upTo ? 'chain-ok' : 'chain-broken', 'data-verified': String(upTo) },
    el('strong', {}, upTo ? `Verified: the chain up to seq ${cp.seq} holds and this checkpoint signs it` : `NOT verified up to seq ${cp.seq}`)));
  return box;
}

/** `#/audit`: filters, records, detail. */
export function show(view, me, params) {
  const inputs = FILTERS.map(([id, label, type]) => el('div', {}, el('label', { for: `a-${id}` }, label),
    el('input', { id: `a-${id}`, name: id, type, value: params.get(id) || '', min: type === 'number' ? 1 : null })));
  const form = el('form', { class: 'filters', 'aria-label': 'Filter the audit trail' }, inputs,
    select('decision', 'Decision', ['', 'allow', 'deny', 'error', 'pending'], params.get('decision') || ''),
    select('kind', 'Kind', ['', 'request', 'approval', 'system'], params.get('kind') || ''),
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const c of form.querySelectorAll('input, select')) if (c.value.trim()) q.set(c.name, c.value.trim());
    location.hash = `#/audit?${q}`;
  });
  const list = el('div', { id: 'records' });
  const q = apiQuery(params);
  const exportLink = el('a', { href: `/v1/audit?${q}`, download: 'audit.json', id: 'export' }, 'Export this range (JSON)');
  const chain = el('section', { id: 'chain', 'aria-labelledby': 'chain-title' }, el('h2', { id: 'chain-title' }, 'Chain'), el('p', {}, 'Verifying…'));
  replace(view, el('h1', {}, 'Audit trail'), chain, form, el('p', {}, exportLink), list);
  // The chain and every checkpoint signature, checked by the gateway now, and the newest signed
  // checkpoint itself: the chain up to it is verified when the whole check passed and it
  // reached that checkpoint's sequence.
  // The checkpoint is fetched first: checkpoints are only ever added, so the verification that
  // follows has seen it (or a newer one) and can say whether the chain up to it holds.
  get('/v1/audit/checkpoint').then(async (c) => [await get('/v1/audit/verify'), c]).then(([r, c]) => {
    if (!r.ok) { replace(chain, el('h2', { id: 'chain-title' }, 'Chain'), el('p', { class: 'error' }, problem(r))); return; }
    const v = r.body.report;
    const verdict = r.body.ok ? 'intact' : 'BROKEN';
    replace(chain, el('h2', { id: 'chain-title' }, 'Chain'),
      el('p', { class: r.body.ok ? 'chain-ok' : 'chain-broken', 'data-ok': String(r.body.ok) },
        el('strong', {}, `Chain ${verdict}`),
        `: ${v.records} records (seq ${v.first_seq ?? '—'} to ${v.last_seq ?? '—'}), ${v.checkpoints} valid signed checkpoints; `,
        `latest signed seq ${v.last_signed_seq ?? 'none'}, ${v.unsigned_records} records after it (chain only). Head ${v.head_hash || '—'}.`),
      v.problems.length ? el('ul', { class: 'error' }, v.problems.map((p) => el('li', {}, `${p.file}:${p.line}: ${p.detail}`))) : null,
      checkpoint(c, r.body.ok, v),
      el('p', { class: 'note' }, 'Checked by the gateway against its own signing key; for an independent check run `tracegate audit verify --public-key` with a key you keep.'));
  });
  get(`/v1/audit?${q}`).then((r) => {
    if (!r.ok) { replace(list, el('div', { class: 'error', role: 'alert' }, problem(r))); return; }
    const route = params.get('route');
    const records = r.body.records.filter((x) => !route || (x.request && x.request.route === route));
    const rows = records.map((x) => {
      const open = el('button', { type: 'button', class: 'link', 'aria-expanded': 'false', id: `rec-${x.seq}` },
        `#${x.seq} ${x.time} · ${x.kind} · ${x.principal ? x.principal.subject : '—'} · ${x.request ? `${x.request.method} ${x.request.route}` : (x.event && x.event.change) || ''} · ${x.decision || ''} ${x.status ?? ''}`);
      const box = el('li', { class: `record ${x.decision || ''}`, 'data-seq': x.seq }, open);
      open.addEventListener('click', () => {
        const shown = box.querySelector('.record-detail');
        if (shown) { shown.remove(); open.setAttribute('aria-expanded', 'false'); } else { box.append(detail(x)); open.setAttribute('aria-expanded', 'true'); }
      });
      return box;
    });
    list.setAttribute('data-loaded', params.toString());
    replace(list, el('h2', {}, `${records.length} record${records.length === 1 ? '' : 's'}`), rows.length ? el('ol', { class: 'records' }, rows) : el('p', {}, 'None.'));
    say(`${records.length} audit records`);
  });
  return null;
}
