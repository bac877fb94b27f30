// DOM helpers. Everything the console shows goes through `el`/`text`: text is set with
// textContent and attributes with setAttribute, never parsed as HTML. Trace content is hostile.

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// A masked value, as the gateway's operators write it: `[REDACTED:EMAIL]` (redact) or
// `EMAIL_3f9a1c2b7d4e` (keyed pseudonym).
const MASK = /\[REDACTED:([A-Z0-9_]+)\]|\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)_([0-9a-f]{12})\b/g;

/**
 * A string as nodes, with every masked span wrapped in a highlighted, labeled element. The
 * type is shown next to the span and named for assistive technology.
 */
export function masked(value) {
  const s = String(value);
  const out = [];
  let last = 0;
  for (const m of s.matchAll(MASK)) {
    if (m.index > last) out.push(s.slice(last, m.index));
    const type = m[1] || m[2];
    const kind = m[1] ? 'redacted' : 'pseudonym';
    out.push(el('mark', { class: `mask ${kind}`, 'data-mask-type': type, title: `${kind}: ${type}` },
      el('span', { class: 'mask-type' }, type), ' ', m[0]));
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push(s.slice(last));
  return out;
}

/** Seconds as `1h 02m`, `4m 05s`, `12s`. */
export function duration(secs) {
  if (secs <= 0) return 'expired';
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = Math.floor(secs % 60);
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** Shows a message in the page's live region (announced by screen readers). */
export function say(message) {
  const s = document.getElementById('status');
  if (s) s.textContent = message;
}
