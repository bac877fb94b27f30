// Shared by the console's browser specs: start headless Debian chromium through playwright-core,
// sign in with the development sign-in, fail loudly.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

// axe-core (pinned in package.json), evaluated into the page through the DevTools protocol:
// the page's own CSP stays as served, and the console never loads it.
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const base = process.env.GATEWAY_URL;
if (!base) throw new Error('GATEWAY_URL is not set (the gateway under test)');

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** Fails the spec with `message`. */
export function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
}

/**
 * A fresh browser context (its own cookies) signed in as `subject`. Every page of it fails the
 * spec on a script error or a CSP violation: the console must run under its policy unchanged.
 */
export async function signIn(browser, subject, problems) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  context.on('page', (p) => watch(p, subject, problems));
  const page = await context.newPage();
  await page.goto(`${base}/console/`);
  await page.locator('#signin-dev').waitFor({ state: 'visible' });
  check(await page.locator('#signin-sso').isHidden(), 'the identity-provider button shows without [identity.browser]');
  await page.click('#signin-dev');
  await page.locator(`button[data-subject="${subject}"]`).click();
  await page.waitForURL(`${base}/console/`);
  await page.locator('#who', { hasText: subject }).waitFor();
  return { context, page };
}

function watch(page, who, problems) {
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`${who}: console error: ${m.text()}`);
  });
}

/** Every visible text and every attribute value of the page: what a person or a tool could read. */
export async function rendered(page) {
  return page.evaluate(() => {
    const attrs = [];
    for (const e of document.querySelectorAll('*')) for (const a of e.attributes) attrs.push(a.value);
    const values = [...document.querySelectorAll('input, textarea')].map((e) => e.value);
    return [document.body.innerText, document.title, ...attrs, ...values].join('\n');
  });
}

/**
 * Basic accessibility of the current page: every form control has a label, every button and
 * link has a name, ids are unique, the page has one h1 and a lang, and the focused element
 * shows a focus ring. Returns the problems found.
 */
export async function accessibility(page) {
  return page.evaluate(() => {
    const out = [];
    for (const c of document.querySelectorAll('input, textarea, select')) {
      const labelled = (c.id && document.querySelector(`label[for="${c.id}"]`)) || c.getAttribute('aria-label') || c.closest('label');
      if (!labelled) out.push(`control without a label: ${c.outerHTML.slice(0, 80)}`);
    }
    for (const b of document.querySelectorAll('button, a[href]')) {
      if (!b.hidden && !b.textContent.trim() && !b.getAttribute('aria-label')) out.push(`unnamed ${b.tagName}`);
    }
    const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
    const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dup.length) out.push(`duplicate ids: ${dup.join(', ')}`);
    const h1 = [...document.querySelectorAll('h1')].filter((h) => h.checkVisibility());
    if (h1.length !== 1) out.push(`${h1.length} visible h1 elements`);
    if (!document.documentElement.lang) out.push('no lang on <html>');
    return out;
  });
}

/** The focused element's id, text and whether it draws a visible focus outline. */
export async function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    const style = getComputedStyle(e);
    return { id: e.id, text: (e.textContent || '').trim(), tag: e.tagName, ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 };
  });
}

/**
 * axe-core's WCAG 2.1 A and AA rules (colour contrast, names, labels, landmarks, ARIA use …) on
 * the current page. Returns one line per violation, with up to three offending elements.
 */
export async function axe(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  return found;
}
