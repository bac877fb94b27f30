// The web console in a real browser, against a `tracegate serve` started by
// crates/tracegate/tests/console.rs on a quickstart data directory.
//
// - sign-in with the development sign-in; CSP holds (no violation, no script error);
// - inbox: a requester asks (202 in the viewer), their own request shows without approve
//   buttons; an approver in a second browser approves with a comment; a third approver's inbox
//   drops the request without a reload; the requester's waiting page shows the served read;
// - deny path: the requester's page shows the denial and its comment;
// - viewer: an engineer's masked view highlights masks by type and the rendered DOM contains
//   none of the planted raw secrets (PLANTED: a JSON array); support sees withheld parts marked;
// - viewer: support's page lists the paths the gateway says its view withheld;
// - audit explorer: the chain verifies and the latest signed checkpoint is shown verified; a read is replayed (by keyboard): reproduced, its body
//   withheld from an auditor who reads no trace, shown with its masks to one whose view covers it,
//   and no planted secret in either page;
// - accessibility: axe-core's WCAG 2.1 AA rules (contrast included) and our own checks on each page.
// SHOTS=dir writes a screenshot of each page there.

import { base, launch, check, signIn, rendered, accessibility, axe, focused } from './lib.mjs';

const planted = JSON.parse(process.env.PLANTED || '[]');
const shots = process.env.SHOTS;
const problems = [];
const browser = await launch();

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

try {
  // ---- signed out: the sign-in page ------------------------------------------------------
  {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 700 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/console/`);
    await page.locator('#signin-dev').waitFor({ state: 'visible' });
    await shot(page, 'sign-in');
    await page.click('#signin-dev');
    await page.locator('button[data-subject="sam"]').waitFor();
    await shot(page, 'dev-login');
    await ctx.close();
  }

  // ---- approve path ----------------------------------------------------------------------
  const sid = await signIn(browser, 'sid', problems);
  const sec = await signIn(browser, 'sec-lead', problems);
  const two = await signIn(browser, 'sec-two', problems);

  await sid.page.goto(`${base}/console/#/traces/demo-agent-1?purpose=incident%2042`);
  const pending = sid.page.locator('.pending');
  await pending.waitFor();
  const id = await pending.getAttribute('data-request');
  check(id, 'the waiting page names its access request');

  const own = await sid.context.newPage();
  await own.goto(`${base}/console/#/inbox`);
  const mine = own.locator(`article[data-request="${id}"]`);
  await mine.waitFor();
  check(await mine.locator('button').count() === 0, 'the requester sees approve/deny buttons on their own request');
  check((await mine.locator('.own').count()) === 1, 'the requester’s own request is not marked as theirs');

  await two.page.goto(`${base}/console/#/inbox`);
  await two.page.locator(`#waiting article[data-request="${id}"] button.approve`).waitFor();

  await sec.page.goto(`${base}/console/#/inbox`);
  const card = sec.page.locator(`#waiting article[data-request="${id}"]`);
  await card.waitFor();
  check((await card.locator('.requester').innerText()) === 'sid', 'the card names the requester');
  check((await card.locator('.purpose').innerText()) === 'incident 42', 'the card shows the purpose');
  check(/0 of 1/.test(await card.locator('.progress').innerText()), 'the card shows N-of-M progress');
  check(/\d+m/.test(await card.locator('.left').innerText()), 'the card shows the time left');
  await card.locator('.reveal-off').waitFor();
  check((await card.locator('.reveal-fields').innerText()).includes('allow $'), 'the card shows the fields a grant reveals');
  check((await card.locator('.reveal-off').innerText()).includes('everything'), 'the card says a grant unmasks everything');
  check((await card.locator('.reveal-off').textContent()).includes('email'), 'the card lists the detectors a grant turns off');
  // Compared by the gateway with what sid sees without the grant (sid reads nothing but as sre).
  check((await card.locator('.current-view').innerText()).includes('nothing'), 'the card does not say what the requester sees now');
  check((await card.locator('.unhidden').innerText()).includes('everything the granted view holds'), 'the card does not say which fields a grant unhides');
  check((await card.locator('.lifted').textContent()).includes('email: not shown → off'), 'the card does not list the masks a grant lifts');
  await shot(sec.page, 'inbox');
  await card.locator('textarea').fill('incident 42, paged by on-call');
  await card.locator('button.approve').click();
  await sec.page.locator('#status', { hasText: 'approved' }).waitFor();

  // The other approver's inbox and the requester's pages follow without a reload.
  await two.page.locator(`#waiting article[data-request="${id}"]`).waitFor({ state: 'detached', timeout: 20000 });
  await two.page.locator(`#other article[data-request="${id}"] .badge.approved`).waitFor({ timeout: 20000 });
  await sid.page.locator('.agent').waitFor({ timeout: 20000 });
  const served = await sid.page.locator('.served').innerText();
  check(served.includes('sre') && served.includes(id), `the served read names role and grant: ${served}`);
  await mine.locator('.badge.approved').waitFor({ timeout: 20000 });
  await mine.locator('text=incident 42, paged by on-call').waitFor();

  // ---- deny path -------------------------------------------------------------------------
  await sid.page.goto(`${base}/console/#/traces/demo-agent-2?purpose=curious`);
  await sid.page.locator('.pending').waitFor();
  const denyId = await sid.page.locator('.pending').getAttribute('data-request');
  const denyCard = sec.page.locator(`#waiting article[data-request="${denyId}"]`);
  await denyCard.waitFor({ timeout: 20000 });
  await denyCard.locator('button.deny').click();
  await sec.page.locator('#status', { hasText: 'needs a comment' }).waitFor();
  // The rest by keyboard only: the comment box has the focus (the page put it there), type,
  // Tab past Approve to Deny, Enter. Each stop shows a focus ring.
  let f = await focused(sec.page);
  check(f.tag === 'TEXTAREA' && f.id === `req-${denyId}-comment`, `a refused denial leaves the focus in its comment box: ${JSON.stringify(f)}`);
  await sec.page.keyboard.type('not for curiosity');
  await sec.page.keyboard.press('Tab');
  f = await focused(sec.page);
  check(f.text === 'Approve' && f.ring, `Tab from the comment reaches Approve, with a focus ring: ${JSON.stringify(f)}`);
  await sec.page.keyboard.press('Tab');
  f = await focused(sec.page);
  check(f.text === 'Deny' && f.ring, `then Deny: ${JSON.stringify(f)}`);
  await sec.page.keyboard.press('Enter');
  const denied = sid.page.locator('.error', { hasText: 'denied' });
  await denied.waitFor({ timeout: 20000 });
  check((await denied.innerText()).includes('not for curiosity'), 'the requester sees the denial comment');

  // ---- viewer: masks highlighted, no raw planted secret anywhere in the DOM --------------
  const erin = await signIn(browser, 'erin', problems);
  for (const trace of ['demo-agent-1', 'demo-agent-2', 'demo-otlp-1']) {
    await erin.page.goto(`${base}/console/#/traces/${trace}`);
    await erin.page.locator('.served').waitFor();
    const marks = await erin.page.locator('mark.mask').count();
    check(marks > 0, `${trace}: no masked span highlighted`);
    const types = await erin.page.locator('mark.mask').evaluateAll((ms) => ms.map((m) => m.dataset.maskType));
    check(types.every((t) => /^[A-Z][A-Z0-9_]*$/.test(t)), `${trace}: a mask without its type: ${types}`);
    const text = await rendered(erin.page);
    // The scan means something only if the trace was rendered: values that are not secret show.
    for (const shown of { 'demo-agent-1': ['refund-agent', 'cus_88121', 'lookup_customer'], 'demo-agent-2': ['password-reset-agent', 'it-helpdesk'], 'demo-otlp-1': ['helpdesk-agent'] }[trace]) {
      check(text.includes(shown), `${trace}: \`${shown}\` is not rendered`);
    }
    check(!text.includes('[object '), `${trace}: a value rendered as [object …]`);
    const leaked = planted.filter((s) => text.includes(s));
    check(leaked.length === 0, `${trace}: planted secrets in the rendered DOM: ${leaked.join(', ')}`);
    if (trace === 'demo-otlp-1') {
      check(await erin.page.locator('.otlp .messages .message').count() > 0, 'OTLP GenAI messages are not decoded');
      await shot(erin.page, 'viewer-otlp');
    }
    if (trace === 'demo-agent-1') await shot(erin.page, 'viewer');
  }
  check(planted.length > 5, 'the planted secrets list is missing');

  const sam = await signIn(browser, 'sam', problems);
  await sam.page.goto(`${base}/console/#/traces/demo-agent-1`);
  await sam.page.locator('.served').waitFor();
  check(await sam.page.locator('.withheld').count() >= 3, 'support’s withheld parts are not marked');
  // The gateway's own list of what the view withheld (`explain=withheld`), as placeholders.
  await sam.page.locator('.withheld-paths .withheld-list li').first().waitFor();
  const listed = await sam.page.locator('.withheld-paths .withheld-list li code').allInnerTexts();
  check(listed.includes("$['system_instructions']") && listed.some((p) => p.endsWith("['reasoning']")), `support's withheld paths: ${listed}`);
  // In place, a missing part the gateway listed is marked withheld, not "withheld or absent".
  const step0 = await sam.page.locator('li.step').first().innerText();
  check(/withheld\s+Reasoning: withheld from your view\n/.test(`${step0}\n`), `step 0's reasoning is not marked withheld in place: ${step0}`);
  const samText = await rendered(sam.page);
  check(!planted.some((s) => samText.includes(s)), 'planted secrets in support’s view');
  await shot(sam.page, 'viewer-support');
  // Asking for more than the role's view is refused with the code and the rule, not shown empty.
  await sam.page.goto(`${base}/console/#/traces/demo-agent-1?fields=${encodeURIComponent('$..reasoning')}`);
  const refused = sam.page.locator('#trace .error');
  await refused.waitFor();
  const why = await refused.innerText();
  check(why.includes('field_denied') && why.includes('roles.support.fields.deny'), `a denied field is not explained: ${why}`);
  // Narrowing with fields= from the form: only the final output comes back.
  await erin.page.goto(`${base}/console/#/traces/demo-agent-1`);
  await erin.page.locator('.served').waitFor();
  await erin.page.fill('#f-fields', '$.final_output');
  await erin.page.click('form.open-trace button[type=submit]');
  // The whole view named the agent; the narrowed one must not (waits for that state).
  await erin.page.waitForFunction(() => location.hash.includes('fields=') && document.querySelector('#trace .served')
    && !document.body.innerText.includes('refund-agent'));
  check((await rendered(erin.page)).includes('refunded the duplicate'), 'the narrowed view lacks the final output');

  // ---- audit explorer: the auditor filters, opens a record, sees rules, grant, approvers, digest
  const ava = await signIn(browser, 'ava', problems);
  await ava.page.goto(`${base}/console/#/audit`);
  await ava.page.locator('#records h2').waitFor();
  await ava.page.locator('#chain [data-ok="true"]', { hasText: 'Chain intact' }).waitFor();
  // The latest signed checkpoint: signer, sequence, head hash, and the chain verified up to it.
  await ava.page.locator('#checkpoint [data-verified="true"]').waitFor();
  check(/^[0-9]+$/.test(await ava.page.locator('#checkpoint .cp-seq').innerText()), 'the checkpoint has no sequence');
  check(/^[0-9a-f]{64}$/.test(await ava.page.locator('#checkpoint .cp-hash').innerText()), 'the checkpoint has no head hash');
  check((await ava.page.locator('#checkpoint .key-id').innerText()).includes('this gateway'), 'the checkpoint does not name its signer');
  await ava.page.fill('#a-subject', 'sid');
  await ava.page.fill('#a-trace_id', 'demo-agent-1');
  await ava.page.fill('#a-route', '/v1/traces/{id}');
  await ava.page.selectOption('#a-decision', 'allow');
  await ava.page.click('form.filters button[type=submit]');
  await ava.page.locator('#records[data-loaded*="&decision=allow"] h2').waitFor();
  const rec = ava.page.locator('li.record').first();
  check(await ava.page.locator('li.record').count() === 1, 'one allowed read of demo-agent-1 by sid');
  await rec.locator('button.link').click();
  const detailText = await rec.locator('.record-detail').innerText();
  for (const want of ['roles.sre.approval', id, 'sec-lead', 'sha256:', 'incident 42']) {
    check(detailText.includes(want), `the record detail lacks \`${want}\`: ${detailText}`);
  }
  const href = await ava.page.locator('#export').getAttribute('href');
  check(href.includes('subject=sid') && href.includes('decision=allow'), `the export link keeps the filters: ${href}`);
  // Replay that read, by keyboard: from the record's button, Tab reaches Replay; Enter.
  await rec.locator('button.link').focus();
  await ava.page.keyboard.press('Tab');
  f = await focused(ava.page);
  check(f.text === 'Replay this read' && f.ring, `Tab from an open record reaches its Replay, with a focus ring: ${JSON.stringify(f)}`);
  await ava.page.keyboard.press('Enter');
  const verdict = rec.locator('.replay-result [data-result]');
  await verdict.waitFor();
  check((await verdict.getAttribute('data-result')) === 'reproduced', `the approved read is not reproduced: ${await rec.locator('.replay-result').innerText()}`);
  check(await rec.locator('.replay-withheld').count() === 1, 'an auditor who reads no trace was not told the body is withheld');
  check(await rec.locator('.as-shown').count() === 0, 'an auditor who reads no trace was shown the body of an unmasked read');
  const avaText = await rendered(ava.page);
  const avaLeaks = planted.filter((s) => avaText.includes(s));
  check(avaLeaks.length === 0, `planted secrets in the auditor's replay: ${avaLeaks.join(', ')}`);
  await shot(ava.page, 'audit');
  // A reader without the audit action sees the API's refusal, not records.
  await erin.page.goto(`${base}/console/#/audit`);
  await erin.page.locator('#records .error').waitFor();

  // An auditor who also reads as an engineer replays the engineer's whole-view read: the body as
  // it was shown then, masks highlighted, nothing raw; the SRE's unmasked read stays withheld.
  const ivy = await signIn(browser, 'ivy', problems);
  await ivy.page.goto(`${base}/console/#/audit?subject=erin&trace_id=demo-agent-1&decision=allow&route=${encodeURIComponent('/v1/traces/{id}')}`);
  await ivy.page.locator('#records h2').waitFor();
  const whole = ivy.page.locator('li.record').last();
  await whole.locator('button.link').click();
  await whole.locator('button.replay').click();
  const asShown = whole.locator('.as-shown');
  await asShown.waitFor();
  check((await asShown.innerText()).includes('refund-agent'), 'the replayed body is not rendered');
  check(await asShown.locator('mark.mask').count() > 0, 'the replayed body has no highlighted masks');
  await shot(ivy.page, 'audit-replay');
  const ivyText = await rendered(ivy.page);
  check(!planted.some((s) => ivyText.includes(s)), 'planted secrets in the engineer-auditor replay');
  await ivy.page.goto(`${base}/console/#/audit?subject=sid&trace_id=demo-agent-1&decision=allow`);
  await ivy.page.locator('#records[data-loaded*="subject=sid"] h2').waitFor();
  const sre = ivy.page.locator('li.record').first();
  await sre.locator('button.link').click();
  await sre.locator('button.replay').click();
  await sre.locator('.replay-withheld').waitFor();
  const ivySre = await rendered(ivy.page);
  check(!planted.some((s) => ivySre.includes(s)), 'an unmasked read replayed to a masked view leaked planted secrets');

  // Accessibility on every page: our basics, then axe-core's WCAG 2.1 AA rules (contrast too).
  for (const [page, name] of [[sec.page, 'inbox'], [erin.page, 'viewer'], [sam.page, 'support viewer'], [ava.page, 'audit'], [ivy.page, 'audit replay']]) {
    const found = await accessibility(page);
    check(found.length === 0, `${name}: ${found.join('; ')}`);
    const violations = await axe(page);
    check(violations.length === 0, `${name}: axe-core: ${violations.join('; ')}`);
  }
  await sec.page.goto(`${base}/console/#/inbox`);
  await sec.page.locator('#waiting').waitFor();
  await sec.page.keyboard.press('Tab');
  f = await focused(sec.page);
  check(f.text === 'Skip to content' && f.ring, `the first Tab stop is the skip link: ${JSON.stringify(f)}`);
  await sec.page.keyboard.press('Enter');
  check((await focused(sec.page)).id === 'main', 'the skip link moves the focus to the main region');

  check(problems.length === 0, `browser problems:\n${problems.join('\n')}`);
  console.log('console.spec: ok');
} finally {
  await browser.close();
}
