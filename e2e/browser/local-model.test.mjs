// Out of the box: the README's run command, with no model configured, serves a chat that really answers,
// from the small model that runs in the server process (downloaded on first use into the cache directory).
//
// The command runs as a newcomer would run it: no model, workspace or identity variables. Only the port (so a
// developer's running app is left alone) and a fresh database (so their chats are too) are chosen by the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, lastAnswerText, waitForStatus, screenshot } from '../support/browser.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const adminUrl = process.env.TEST_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
// The first run builds the release server: allow for it.
const START_TIMEOUT_MS = 45 * 60_000;

let app;
let browser;
let database;
let url;

function psql(sql) {
  execFileSync('psql', [adminUrl, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

before(async () => {
  database = `chat_e2e_local_${Date.now()}`;
  psql(`create database ${database}`);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  app = spawn(path.join(root, 'scripts', 'run.sh'), [], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      DATABASE_URL: adminUrl.replace(/\/[^/]*$/, `/${database}`),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (app.exitCode !== null) throw new Error(`scripts/run.sh exited with ${app.exitCode}`);
    try {
      if ((await fetch(`${url}/api/health`)).ok) break;
    } catch {
      // still building or starting
    }
    if (Date.now() > deadline) throw new Error('the app did not start');
    await new Promise((r) => setTimeout(r, 500));
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (app && app.exitCode === null) {
    process.kill(-app.pid, 'SIGTERM');
    await new Promise((r) => app.once('exit', r));
  }
  if (database) psql(`drop database if exists ${database} with (force)`);
});

test('with no configuration, the run command serves a chat that streams an answer from the local model', async () => {
  const page = await pageFor(browser, url, 'newcomer@example.com');
  await openApp(page);
  const picker = page.getByTestId('model-picker');
  await page.waitForFunction(() => document.querySelector('[data-testid="model-picker"] option') !== null);
  assert.match(await picker.locator('option:checked').innerText(), /small local model/i);
  // The whole label is visible on a desktop screen, and the full name is the picker's tooltip.
  const label = await picker.evaluate((select) => {
    const shown = select.getBoundingClientRect().width;
    select.style.maxWidth = 'none';
    const natural = select.getBoundingClientRect().width;
    select.style.maxWidth = '';
    return { text: select.options[select.selectedIndex].text, title: select.title, shown, natural };
  });
  assert.equal(label.title, label.text);
  assert.ok(label.natural <= label.shown + 0.5, `the picker shows its whole label: ${JSON.stringify(label)}`);
  await screenshot(page, 'local-model-empty');

  const sentAt = Date.now();
  await send(page, 'What is the capital of France?');
  // Streaming: text is on the page while the answer is still being written.
  await page.waitForFunction(
    () => {
      const answers = document.querySelectorAll('[data-testid="message-assistant"]');
      const last = answers[answers.length - 1];
      const text = last?.querySelector('[data-testid="answer-text"]')?.innerText ?? '';
      return last?.getAttribute('data-status') === 'streaming' && text.trim().length > 0;
    },
    null,
    { timeout: 120_000 },
  );
  const firstTextMs = Date.now() - sentAt;
  await screenshot(page, 'local-model-streaming');
  await waitForStatus(page, 'complete', 120_000);
  const answer = (await lastAnswerText(page)).trim();
  assert.ok(answer.length > 0, 'the answer has text');
  await screenshot(page, 'local-model-answer');

  // It was stored: a reload shows the same answer.
  await page.reload();
  await page.getByTestId('message-assistant').first().waitFor();
  assert.equal((await lastAnswerText(page)).trim(), answer);
  assert.deepEqual(page.errors, []);
  console.log(`local model: first words painted ${firstTextMs} ms after sending (includes any wait for the model to load)`);
});
