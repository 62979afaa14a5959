#!/usr/bin/env node
// End-to-end test of the web console in real Chromium, driven by playwright-core
// (Debian's /usr/bin/chromium or $CHROMIUM; no browser is ever downloaded). It signs
// in, adds a model through the admin page, streams a chat reply, reloads mid-reply and
// sees it finish, stops another reply, edits memory (a pinned one, searched by meaning
// and then used by a chat reply), searches messages by meaning, runs a command in the
// terminal and opens the API reference, failing on any console error, page error or CSP
// violation. The backend needs the all-minilm-l6-v2 model files (`arcana models`).
//
//   ARCANA_URL=http://127.0.0.1:3000 ARCANA_USER=admin ARCANA_PASSWORD=... \
//   ARCANA_PROVIDER=<provider pointing at the LLM stand-in> ARCANA_SCREENSHOTS=/tmp/shots \
//   node tests/browser/console.mjs
//
// Prints `ok - <step>` for each step; exits 0 only when every step passed. On a failure
// it saves a full-page screenshot named after the step in $ARCANA_SCREENSHOTS.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../console/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const BASE = (process.env.ARCANA_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const USER = need('ARCANA_USER');
const PASSWORD = need('ARCANA_PASSWORD');
const PROVIDER = need('ARCANA_PROVIDER');
const SHOTS = process.env.ARCANA_SCREENSHOTS || '';
/** Limit for each step; single waits give up a little earlier, naming what they waited for. */
const STEP_MS = 15_000;
const WAIT_MS = 12_000;
/** The stand-in streams model `drip` one word per 100 ms. */
const MODEL = 'drip';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return v;
}

/** Console errors, page errors and CSP violations seen so far, in order. */
const problems = [];
const started = Date.now();

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'arcana-console-test-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(WAIT_MS);
// CSP violations as events too (Chromium also logs them as console errors).
await context.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile || document.URL}:${e.lineNumber}`);
  });
});
const watched = new WeakSet();
const watch = (p) => {
  if (watched.has(p)) return;
  watched.add(p);
  p.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${p.url()}: ${m.text()}`);
  });
  p.on('pageerror', (e) => problems.push(`page error on ${p.url()}: ${e.message}`));
  p.on('dialog', (d) => d.accept());
};
context.on('page', watch);
const page = context.pages()[0] ?? (await context.newPage());
watch(page);

async function step(name, run) {
  let timer;
  try {
    await Promise.race([
      run(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${STEP_MS} ms`)), STEP_MS))),
    ]);
    if (problems.length) throw new Error(`errors in the page:\n  ${problems.join('\n  ')}`);
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e?.stack || e).split('\n').join('\n  ')}`);
    if (problems.length && !String(e).includes('errors in the page')) console.log(`  errors in the page:\n    ${problems.join('\n    ')}`);
    if (SHOTS) {
      fs.mkdirSync(SHOTS, { recursive: true });
      const file = path.join(SHOTS, `${name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}.png`);
      await page.screenshot({ path: file, fullPage: true }).then(
        () => console.log(`  screenshot: ${file}`),
        (err) => console.log(`  no screenshot: ${err.message}`),
      );
    }
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    process.exit(1);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `check()` is truthy (polling), failing with `what` after `ms`. */
async function until(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lastReply = () => page.locator('[data-testid="message"][data-sender="llm"]').last();
const replyState = async () => {
  const r = lastReply();
  if ((await r.count()) === 0) return { status: null, text: '' };
  return { status: await r.getAttribute('data-status'), text: await r.getByTestId('message-body').innerText() };
};
const words = (n, tag) => Array.from({ length: n - 1 }, (_, i) => `${tag}${i + 1}`).concat(`${tag}end${Date.now() % 100000}`);

// 1.
await step('sign in', async () => {
  await page.goto(`${BASE}/`);
  await page.getByLabel('User name').fill(USER);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Chat' }).waitFor();
  await page.getByTestId('composer').waitFor();
});

// 2.
await step(`admin: add model ${MODEL} under ${PROVIDER}, pick it`, async () => {
  await page.getByRole('link', { name: 'Admin', exact: true }).click();
  await page.getByTestId('provider-table').getByRole('cell', { name: PROVIDER, exact: true }).waitFor();
  const table = page.getByTestId('model-table');
  await table.waitFor();
  const existing = table.locator('tr', { has: page.locator('code', { hasText: new RegExp(`^${MODEL}$`) }) }).filter({ hasText: PROVIDER });
  if ((await existing.count()) > 0) {
    // From an earlier run: delete it so that it is added through the form again.
    await existing.first().getByRole('button', { name: `Delete model ${MODEL}` }).click();
    await until('the old model to go', async () => (await existing.count()) === 0);
  }
  await page.getByTestId('model-provider').selectOption({ label: PROVIDER });
  await page.getByTestId('embedding-current').filter({ hasText: /^Current: / }).waitFor();
  await page.getByLabel('Model name', { exact: true }).fill(MODEL);
  await page.getByRole('button', { name: 'Add model' }).click();
  await existing.first().waitFor();
  const id = await existing.first().locator('code[data-model-id]').getAttribute('data-model-id');

  await page.getByRole('link', { name: 'Chat', exact: true }).click();
  const picker = page.getByTestId('model-picker');
  // The new model's own option (the picker reloads its list when the tab opens).
  const option = picker.locator(`option[value="${id}"]`);
  await option.waitFor({ state: 'attached' });
  if ((await option.textContent()) !== `${MODEL} · ${PROVIDER}`) throw new Error(`picker shows ${await option.textContent()}`);
  await picker.selectOption(id);
});

// 3.
// About six seconds of reply: room to reload mid-stream on a busy machine.
const first = words(60, 'alpha');
const firstEcho = `echo: ${first.join(' ')}`;
await step('chat: the reply streams in', async () => {
  await page.getByTestId('new-chat').click();
  await page.getByTestId('composer').fill(first.join(' '));
  await page.getByTestId('send').click();
  const a = await until('reply text', async () => {
    const s = await replyState();
    return s.status === 'streaming' && s.text.length > 0 && s;
  });
  const b = await until('the reply to grow', async () => {
    const s = await replyState();
    return s.text.length > a.text.length && s;
  });
  if (b.status !== 'streaming') throw new Error(`expected the reply still streaming, it is ${b.status}`);
  if (!firstEcho.startsWith(b.text)) throw new Error(`unexpected reply text: ${b.text}`);
});

// 4.
await step('reload mid-reply: the reply continues and completes', async () => {
  const before = await replyState();
  if (before.status !== 'streaming' || before.text.includes(first.at(-1))) throw new Error(`the reply is no longer mid-stream: ${JSON.stringify(before)}`);
  await page.reload();
  // Resumed: the same reply is shown streaming again after the reload…
  await page.locator('[data-testid="message"][data-sender="llm"][data-status="streaming"]').waitFor();
  // …and finishes with the whole echo.
  await page.locator('[data-testid="message"][data-sender="llm"][data-status="complete"]').last().waitFor();
  const after = await replyState();
  if (after.text.trim() !== firstEcho) throw new Error(`expected the full echo, got: ${after.text}`);
  await page.getByText(first.at(-1)).last().waitFor();
});

// 5.
await step('stop a reply mid-stream', async () => {
  const second = words(40, 'beta');
  const echo = `echo: ${second.join(' ')}`;
  await page.getByTestId('composer').fill(second.join(' '));
  await page.getByTestId('send').click();
  await until('the second reply to stream', async () => {
    const s = await replyState();
    return s.status === 'streaming' && s.text.includes('beta2') && s;
  });
  await page.getByTestId('stop').click();
  await page.locator('[data-testid="message"][data-sender="llm"]').last().and(page.locator('[data-status="cancelled"]')).waitFor();
  const stopped = await replyState();
  if (stopped.text.includes(second.at(-1)) || !echo.startsWith(stopped.text.trim())) throw new Error(`the reply did not stop short: ${stopped.text}`);
  await page.waitForTimeout(400);
  const later = await replyState();
  if (later.text !== stopped.text) throw new Error('the reply kept growing after stop');
});

// 6.
const PET_QUESTION = 'what should I feed my pet?';
await step('memory: add, pin, search by meaning, used by a reply, delete', async () => {
  const key = `console-test-${Date.now()}`;
  const memoryTab = page.getByRole('link', { name: 'Memory', exact: true });
  await memoryTab.click();
  await page.getByLabel('Key', { exact: true }).fill(key);
  await page.getByLabel('Value (JSON, or plain text)').fill('{"likes": "green tea"}');
  await page.getByRole('button', { name: 'Save memory' }).click();
  const row = page.getByTestId('memory-table').locator('tr', { hasText: key });
  await row.waitFor();
  await row.getByText('green tea').waitFor();
  if ((await row.getByTestId('memory-pin').count()) !== 0) throw new Error(`${key} shows as pinned`);

  // A pinned memory (replaced if an earlier run left it).
  await page.getByLabel('Key', { exact: true }).fill('pet');
  await page.getByLabel('Value (JSON, or plain text)').fill('my cat is named Miso');
  await page.getByTestId('memory-pinned').check();
  await page.getByRole('button', { name: 'Save memory' }).click();
  const pet = page.getByTestId('memory-table').locator('tr', { has: page.locator('code', { hasText: /^pet$/ }) });
  await pet.getByText('my cat is named Miso').waitFor();
  await pet.getByTestId('memory-pin').waitFor();

  // By meaning: no word in common with the memory.
  await page.getByTestId('memory-search').fill('animals living with me');
  await page.getByTestId('memory-search-go').click();
  const hit = page.getByTestId('memory-hit').first();
  await hit.waitFor();
  const firstKey = await hit.getAttribute('data-key');
  const score = (await hit.getByTestId('memory-hit-score').innerText()).trim();
  if (firstKey !== 'pet') throw new Error(`the first memory hit is ${firstKey}, not pet`);
  if (!/^-?\d\.\d\d$/.test(score)) throw new Error(`the hit's score reads "${score}"`);

  // A reply's prompt included it.
  await page.getByRole('link', { name: 'Chat', exact: true }).click();
  await page.getByTestId('new-chat').click();
  await page.getByTestId('composer').fill(PET_QUESTION);
  await page.getByTestId('send').click();
  await page.locator('[data-testid="message"][data-sender="llm"]').last().and(page.locator('[data-status="complete"]')).waitFor();
  const used = lastReply().getByTestId('memory-used');
  await used.filter({ hasText: /^memory used: .*\bpet\b/ }).waitFor();

  await memoryTab.click();
  for (const [k, r] of [[key, row], ['pet', pet]]) {
    await r.getByRole('button', { name: `Delete memory ${k}` }).click();
    await r.waitFor({ state: 'detached' });
  }
});

// 7.
await step('search messages by meaning', async () => {
  await page.getByRole('link', { name: 'Chat', exact: true }).click();
  await page.getByTestId('search-mode').selectOption('semantic');
  // No word in common with the question sent in the memory step.
  await page.getByTestId('conversation-search').fill('kitty food');
  const hit = page.getByTestId('search-hit').filter({ hasText: 'feed my pet' }).first();
  await hit.waitFor();
  const score = (await hit.getByTestId('search-score').innerText()).trim();
  if (!/^-?\d\.\d\d$/.test(score)) throw new Error(`the hit's score reads "${score}"`);
  await page.getByTestId('search-ranked-by').filter({ hasText: /^ranked by (index|database|scan)$/ }).waitFor();
  await page.getByTestId('conversation-search').fill('');
});

// 8.
await step('terminal: run a command', async () => {
  await page.getByRole('link', { name: 'Terminal', exact: true }).click();
  await page.getByTestId('terminal-status').filter({ hasText: /^Connected/ }).waitFor();
  const screen = () => page.locator('[data-testid="terminal"] .xterm-rows').innerText().then((t) => t.replace(/\u00a0/g, ' '));
  await until('a shell prompt', async () => /[$#>]\s*$/m.test(await screen()));
  await page.locator('[data-testid="terminal"] .xterm-screen').click();
  await page.keyboard.type('echo arcana-$((6*7))');
  await page.keyboard.press('Enter');
  await until('arcana-42 in the terminal', async () => (await screen()).includes('arcana-42'));
  // Leave no shell behind (a detached one would live on for its grace period).
  await page.getByRole('button', { name: 'Close session' }).click();
  await page.getByTestId('terminal-status').filter({ hasText: /^Shell ended/ }).waitFor();
});

// 9.
await step('API reference renders', async () => {
  await page.goto(`${BASE}/api/docs`);
  await page.locator('.opblock-summary-path[data-path="/api/chat"]').first().waitFor();
  await page.locator('.opblock-summary-path[data-path="/api/arcana/llm/route/explain"]').first().waitFor();
});

// 10.
await step('no console errors, page errors or CSP violations', async () => {
  if (problems.length) throw new Error(problems.join('\n'));
});

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
console.log(`all steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
