// The trace viewer: a trace exactly as the caller's role is served it by GET /v1/traces/{id},
// rendered for people — agent steps (messages, reasoning, tool calls with arguments and
// results), OpenTelemetry GenAI messages decoded from their JSON strings, anything else as a
// tree. Masked spans are highlighted and labeled with their type. Parts an agent trace usually
// has but that were not served are marked as not shown, never silently left out. A read that
// needs approval shows its access request and waits for it.

import { get, problem } from './api.js';
import { el, replace, masked, say } from './dom.js';

const POLL_MS = 3000;

function queryOf(params) {
  const q = new URLSearchParams();
  for (const f of params.getAll('fields')) if (f.trim()) q.append('fields', f.trim());
  if (params.get('purpose')) q.set('purpose', params.get('purpose'));
  return q;
}

function form(id, params) {
  const fields = el('textarea', { id: 'f-fields', name: 'fields', rows: 2, placeholder: '$.final_output' }, params.getAll('fields').join('\n'));
  const purpose = el('input', { id: 'f-purpose', name: 'purpose', type: 'text', value: params.get('purpose') || '' });
  const trace = el('input', { id: 'f-trace', name: 'trace', type: 'text', required: true, value: id || '', autocomplete: 'off' });
  const f = el('form', { class: 'open-trace', 'aria-label': 'Open a trace' },
    el('div', {}, el('label', { for: 'f-trace' }, 'Trace id'), trace),
    el('div', {}, el('label', { for: 'f-fields' }, 'Fields (JSONPath, one per line; empty: the whole view)'), fields),
    el('div', {}, el('label', { for: 'f-purpose' }, 'Purpose (shown to approvers)'), purpose),
    el('button', { type: 'submit' }, 'Open'));
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const line of fields.value.split('\n')) if (line.trim()) q.append('fields', line.trim());
    if (purpose.value.trim()) q.set('purpose', purpose.value.trim());
    const qs = q.toString();
    location.hash = `#/traces/${encodeURIComponent(trace.value.trim())}${qs ? `?${qs}` : ''}`;
  });
  return f;
}

/** `#/traces`: open a trace by id; with a search role, the traces it may see. */
export function showIndex(view, me) {
  const list = el('div', { id: 'trace-list' });
  replace(view, el('h1', {}, 'Traces'), form('', new URLSearchParams()), list);
  get('/v1/traces').then((r) => {
    if (!r.ok) return;
    const items = (r.body.traces || []).map((t) => el('li', {}, el('a', { href: `#/traces/${encodeURIComponent(t.trace_id)}` }, t.trace_id),
      ' ', el('span', { class: 'note' }, [t.agent, t.tenant, t.started_at].filter(Boolean).join(' · '))));
    replace(list, el('h2', {}, 'Traces you may search'), items.length ? el('ul', {}, items) : el('p', {}, 'None.'));
  });
  return null;
}

/** `#/traces/<id>`: one trace, or the access request it waits on. */
export function showTrace(view, me, id, params) {
  const out = el('div', { id: 'trace' });
  replace(view, el('h1', {}, `Trace ${id}`), form(id, params), out);
  let timer = null;
  let stopped = false;

  async function load(path) {
    const r = await get(path);
    if (stopped) return;
    if (r.status === 200) return render(out, r);
    if (r.status === 202) return waitFor(r.body.access_request, r.body.message);
    replace(out, el('div', { class: 'error', role: 'alert' }, el('h2', {}, 'Not served'), el('p', { class: 'code' }, problem(r)),
      r.body && r.body.error && r.body.error.rules ? el('p', {}, `Rules: ${r.body.error.rules.join(', ')}`) : null));
  }

  function waitFor(req, message) {
    const status = el('p', { class: 'pending-status' }, `Status: ${req.status}`);
    replace(out, el('div', { class: 'pending', 'data-request': req.id },
      el('h2', {}, 'Waiting for approval'), el('p', {}, message || ''),
      el('p', {}, 'Access request ', el('code', { class: 'request-id' }, req.id)), status));
    const poll = async () => {
      const r = await get(`/v1/access-requests/${encodeURIComponent(req.id)}`);
      if (stopped) return;
      if (r.ok) {
        status.textContent = `Status: ${r.body.status} (${r.body.approved_by.length} of ${r.body.terms.approvals} approvals)`;
        if (r.body.status === 'approved') return load(`/v1/access-requests/${encodeURIComponent(req.id)}/result`);
        if (r.body.status !== 'pending') {
          const why = r.body.decisions.map((d) => `${d.by.subject}: ${d.verdict}${d.comment ? ` — ${d.comment}` : ''}`).join('; ');
          replace(out, el('div', { class: 'error', role: 'alert' }, el('h2', {}, `Request ${r.body.status}`), el('p', {}, why)));
          return;
        }
      }
      timer = setTimeout(poll, POLL_MS);
    };
    timer = setTimeout(poll, POLL_MS);
  }

  const request = params.get('request');
  if (request) load(`/v1/access-requests/${encodeURIComponent(request)}/result`);
  else {
    // `explain=withheld`: the gateway also says, in a header outside the body, which paths the
    // view withheld; the body (and its audit digest) is the same as without it.
    const q = queryOf(params);
    q.set('explain', 'withheld');
    load(`/v1/traces/${encodeURIComponent(id)}?${q}`);
  }
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// ---- rendering ------------------------------------------------------------------------------

function render(out, r) {
  const doc = r.body;
  const role = r.headers.get('x-tracegate-role');
  const parts = [el('p', { class: 'served' }, `Served to you as role `, el('strong', {}, role || '?'),
    r.headers.get('x-tracegate-access-request') ? ` under access request ${r.headers.get('x-tracegate-access-request')}` : '')];
  const w = parseWithheld(r.headers.get('x-tracegate-withheld'));
  replace(out, ...parts, withheldList(w), documentView(doc, w && !w.narrowed ? new Set(w.paths) : null));
  const n = out.querySelectorAll('mark.mask').length;
  say(`Trace shown; ${n} masked value${n === 1 ? '' : 's'} highlighted.`);
}

/**
 * A served trace document rendered for people: agent steps, OTLP spans, or a tree. `listed` is
 * the gateway's set of withheld paths when it sent one: a missing usual part listed there is
 * marked as withheld, one not listed as absent from the trace.
 */
export function documentView(doc, listed = null) {
  if (doc && Array.isArray(doc.steps)) return agent(doc, listed);
  if (doc && Array.isArray(doc.resourceSpans)) return otlp(doc);
  return el('section', {}, el('h2', {}, 'Document'), tree(doc));
}

/**
 * The parts the gateway says the view withheld (`x-tracegate-withheld`): placeholders at their
 * normalized paths, keys masked by the gateway as in the body. Absent (a result served under an
 * access request, an older gateway): nothing is claimed either way.
 */
function parseWithheld(header) {
  if (!header) return null;
  try {
    const w = JSON.parse(header);
    return w && Array.isArray(w.paths) ? w : null;
  } catch { return null; }
}

function withheldList(w) {
  if (!w) return null;
  const box = el('section', { class: 'withheld-paths', 'aria-labelledby': 'withheld-title' }, el('h2', { id: 'withheld-title' }, 'Withheld from your view'));
  if (w.narrowed) {
    box.append(el('p', { class: 'note' }, 'A narrowed read (fields): the parts of your view you did not ask for are not listed.'));
    return box;
  }
  if (!w.paths.length && !w.more && !w.too_deep) {
    box.append(el('p', {}, 'Nothing: your role\'s view holds the whole trace (masked values are highlighted below).'));
    return box;
  }
  box.append(el('ul', { class: 'withheld-list' }, w.paths.map((p) => el('li', { class: 'withheld' },
    el('span', { class: 'withheld-tag' }, 'withheld'), ' ', el('code', {}, masked(p))))));
  if (w.more) box.append(el('p', { class: 'note' }, `and ${w.more} more withheld part${w.more === 1 ? '' : 's'}.`));
  if (w.too_deep) box.append(el('p', { class: 'note' }, `${w.too_deep} value${w.too_deep === 1 ? '' : 's'} nested too deep to inspect, withheld.`));
  return box;
}

function withheld(what, path = null, listed = null) {
  if (listed && path && listed.has(path)) {
    return el('p', { class: 'withheld' }, el('span', { class: 'withheld-tag' }, 'withheld'), ` ${what}: withheld from your view`);
  }
  return el('p', { class: 'withheld' }, el('span', { class: 'withheld-tag' }, 'not shown'), ` ${what}: withheld from your view, or not in this trace`);
}

function text(value) {
  return el('p', { class: 'text' }, masked(value));
}

function agent(doc, listed) {
  const s = el('div', { class: 'agent' });
  if (doc.metadata) s.append(el('section', {}, el('h2', {}, 'Metadata'), tree(doc.metadata)));
  s.append(el('section', {}, el('h2', {}, 'System instructions'),
    'system_instructions' in doc ? text(doc.system_instructions) : withheld('System instructions', "$['system_instructions']", listed)));
  const steps = el('ol', { class: 'steps' });
  // The gateway's paths are stored positions: when the view dropped whole steps, the served
  // steps shift and a served index no longer names the stored step, so nothing is claimed.
  const stepListed = listed && ![...listed].some((p) => /^\$\['steps'\]\[\d+\]$/.test(p)) ? listed : null;
  for (const [i, step] of doc.steps.entries()) {
    const at = (k) => `$['steps'][${i}]['${k}']`;
    const li = el('li', { class: 'step' }, el('h3', {}, `Step ${step.index ?? ''}${step.type ? ` · ${step.type}` : ''}`));
    // A step's type says which parts it should have; without one (the type itself not served),
    // every usual part that is missing is marked.
    const expects = (kind) => step.type === undefined || step.type === kind;
    if (Array.isArray(step.messages)) li.append(messages(step.messages));
    else if (expects('llm')) li.append(withheld('Messages', at('messages'), stepListed));
    if ('reasoning' in step) li.append(el('div', { class: 'reasoning' }, el('h4', {}, 'Reasoning'), text(step.reasoning)));
    else if (expects('llm')) li.append(withheld('Reasoning', at('reasoning'), stepListed));
    if (Array.isArray(step.tool_calls)) li.append(toolCalls(step.tool_calls));
    else if (expects('tool')) li.append(withheld('Tool calls', at('tool_calls'), stepListed));
    if ('output' in step) li.append(el('div', { class: 'output' }, el('h4', {}, 'Output'), text(step.output)));
    const known = new Set(['index', 'type', 'messages', 'reasoning', 'tool_calls', 'output']);
    const rest = Object.fromEntries(Object.entries(step).filter(([k]) => !known.has(k)));
    if (Object.keys(rest).length) li.append(tree(rest));
    steps.append(li);
  }
  s.append(el('section', {}, el('h2', {}, 'Steps'), steps));
  if ('final_output' in doc) s.append(el('section', {}, el('h2', {}, 'Final output'), text(doc.final_output)));
  const known = new Set(['trace_id', 'metadata', 'system_instructions', 'steps', 'final_output']);
  const rest = Object.fromEntries(Object.entries(doc).filter(([k]) => !known.has(k)));
  if (Object.keys(rest).length) s.append(el('section', {}, el('h2', {}, 'Other fields'), tree(rest)));
  return s;
}

function messages(list) {
  return el('ul', { class: 'messages' }, list.map((m) => {
    if (!m || typeof m !== 'object') return el('li', {}, tree(m));
    const body = [];
    if ('content' in m) body.push(typeof m.content === 'string' ? text(m.content) : tree(m.content));
    if (Array.isArray(m.parts)) body.push(...m.parts.map(part));
    const rest = Object.fromEntries(Object.entries(m).filter(([k]) => !['role', 'content', 'parts'].includes(k)));
    if (Object.keys(rest).length) body.push(tree(rest));
    return el('li', { class: `message ${m.role || ''}` }, el('span', { class: 'role' }, m.role || 'message'), ...body);
  }));
}

/** One OpenTelemetry GenAI message part (`text`, `reasoning`, `tool_call`, `tool_call_response`). */
function part(p) {
  if (!p || typeof p !== 'object') return tree(p);
  switch (p.type) {
    case 'text': return text(p.content ?? '');
    case 'reasoning': return el('div', { class: 'reasoning' }, el('h4', {}, 'Reasoning'), text(p.content ?? ''));
    case 'tool_call': return el('div', { class: 'tool' }, el('h4', {}, `Tool call ${p.name || ''}`), tree(p.arguments));
    case 'tool_call_response': return el('div', { class: 'tool' }, el('h4', {}, 'Tool result'), tree(p.response ?? p.result));
    default: return tree(p);
  }
}

function toolCalls(calls) {
  return el('div', { class: 'tools' }, el('h4', {}, 'Tool calls'), calls.map((c) => el('div', { class: 'tool' },
    el('p', {}, el('code', {}, c.name || '?'), c.id ? ` (${c.id})` : ''),
    'arguments' in c ? el('div', {}, el('h5', {}, 'Arguments'), tree(c.arguments)) : withheld('Arguments'),
    'result' in c ? el('div', {}, el('h5', {}, 'Result'), tree(c.result)) : null)));
}

const GENAI_JSON = new Set(['gen_ai.input.messages', 'gen_ai.output.messages', 'gen_ai.system_instructions', 'gen_ai.tool.definitions']);

function otlp(doc) {
  const s = el('div', { class: 'otlp' });
  for (const rs of doc.resourceSpans) {
    if (rs.resource) s.append(el('section', {}, el('h2', {}, 'Resource'), attributes(rs.resource.attributes || [])));
    for (const ss of rs.scopeSpans || []) {
      for (const span of ss.spans || []) {
        const box = el('section', { class: 'span' }, el('h2', {}, `Span ${span.name || span.spanId || ''}`));
        const attrs = span.attributes || [];
        for (const a of attrs) {
          const v = a.value && a.value.stringValue;
          if (GENAI_JSON.has(a.key) && typeof v === 'string') {
            let decoded = null;
            try { decoded = JSON.parse(v); } catch { decoded = null; }
            box.append(el('h3', {}, a.key, el('span', { class: 'note' }, decoded ? ' (decoded from its JSON string)' : '')),
              Array.isArray(decoded) ? messages(decoded) : decoded ? tree(decoded) : text(v));
          }
        }
        const plain = attrs.filter((a) => !(GENAI_JSON.has(a.key) && a.value && typeof a.value.stringValue === 'string'));
        if (plain.length) box.append(el('h3', {}, 'Attributes'), attributes(plain));
        const op = attrs.find((a) => a.key === 'gen_ai.operation.name');
        const chat = op && op.value && op.value.stringValue === 'chat';
        if (chat && !attrs.some((a) => a.key === 'gen_ai.input.messages')) box.append(withheld('gen_ai.input.messages'));
        const rest = Object.fromEntries(Object.entries(span).filter(([k]) => k !== 'attributes'));
        box.append(el('details', {}, el('summary', {}, 'Span fields'), tree(rest)));
        s.append(box);
      }
    }
  }
  return s;
}

function attributes(list) {
  return el('dl', { class: 'attrs' }, list.map((a) => [el('dt', {}, a.key), el('dd', {}, tree(a.value && 'stringValue' in a.value ? a.value.stringValue : a.value))]));
}

/** Any JSON value as nested lists; strings holding JSON are decoded and shown as such. */
function tree(v, depth = 0) {
  if (depth > 40) return el('span', { class: 'note' }, '…');
  if (v === null || v === undefined) return el('span', { class: 'null' }, String(v));
  if (typeof v === 'string') {
    const t = v.trim();
    if ((t.startsWith('{') || t.startsWith('[')) && t.length > 1) {
      try { return el('div', { class: 'decoded' }, el('span', { class: 'note' }, 'decoded JSON string'), tree(JSON.parse(t), depth + 1)); } catch { /* plain text */ }
    }
    return el('span', { class: 'str' }, masked(v));
  }
  if (typeof v !== 'object') return el('span', { class: 'scalar' }, String(v));
  if (Array.isArray(v)) return el('ol', { class: 'arr', start: 0 }, v.map((x) => el('li', {}, tree(x, depth + 1))));
  return el('dl', { class: 'obj' }, Object.entries(v).map(([k, x]) => [el('dt', {}, masked(k)), el('dd', {}, tree(x, depth + 1))]));
}
