// Answers belong to the server: a reload mid-answer continues it, stop keeps the partial text, errors can be
// retried.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, numberedText, pushScenarios } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, lastAnswerText, waitForStatus, screenshot, words } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 15, env: { CHECKPOINT_INTERVAL_MS: '200' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('a reload in the middle of an answer continues it to the end without duplicated text', async () => {
  const page = await pageFor(browser, stack.url, 'ada@example.com');
  await openApp(page);
  await send(page, 'Long one [[fake tokens=150 delay_ms=30]]');
  await page.waitForFunction(() => document.querySelector('[data-testid="answer-text"]')?.innerText.includes('w20'));

  await page.reload();
  await page.getByTestId('message-assistant').waitFor();
  await screenshot(page, 'resumed-mid-answer');
  await waitForStatus(page, 'complete', 30_000);

  const text = (await lastAnswerText(page)).trim();
  assert.equal(text, numberedText(150));
  const seen = words(text);
  assert.equal(new Set(seen).size, seen.length, 'no word appears twice');
});

test('a second tab follows the same answer', async () => {
  const first = await pageFor(browser, stack.url, 'tabs@example.com');
  await openApp(first);
  await send(first, '[[fake tokens=80 delay_ms=30]]');
  await first.waitForFunction(() => document.querySelector('[data-testid="answer-text"]')?.innerText.includes('w5'));
  const second = await first.context().newPage();
  await second.goto(first.url());
  await waitForStatus(second, 'complete', 30_000);
  await waitForStatus(first, 'complete', 30_000);
  assert.equal((await lastAnswerText(second)).trim(), numberedText(80));
  assert.equal((await lastAnswerText(first)).trim(), numberedText(80));
});

test('stop keeps the partial answer, also after a reload', async () => {
  const page = await pageFor(browser, stack.url, 'grace@example.com');
  await openApp(page);
  await send(page, 'Stop me [[fake tokens=400 delay_ms=25]]');
  await page.waitForFunction(() => document.querySelector('[data-testid="answer-text"]')?.innerText.includes('w10'));
  await page.getByTestId('stop').click();
  await waitForStatus(page, 'stopped');
  await page.getByTestId('stopped').waitFor();
  const partial = (await lastAnswerText(page)).trim();
  assert.ok(numberedText(400).startsWith(partial) && partial.length < numberedText(400).length, partial);
  await screenshot(page, 'stopped');

  await page.reload();
  await waitForStatus(page, 'stopped');
  assert.equal((await lastAnswerText(page)).trim(), partial);
  // The composer is ready for the next message.
  await send(page, 'Next [[fake tokens=3]]');
  await waitForStatus(page, 'complete');
});

test('a model error is shown on the answer and can be retried', async () => {
  const page = await pageFor(browser, stack.url, 'lin@example.com');
  await openApp(page);
  await send(page, 'Fail please [[fake tokens=20 fail_after=4 delay_ms=10]]');
  await waitForStatus(page, 'error');
  const error = await page.getByTestId('answer-error').innerText();
  assert.match(error, /fake failure mid-stream/);
  assert.equal((await lastAnswerText(page)).trim(), numberedText(4), 'the partial text stays');
  await screenshot(page, 'model-error');

  // The retry answers the same message again; this time the fake answers normally.
  await pushScenarios(stack.fakeUrl, [
    { steps: [{ type: 'text', text: 'Recovered ' }, { type: 'text', text: 'answer.' }, { type: 'done' }] },
  ]);
  await page.getByTestId('retry').click();
  await waitForStatus(page, 'complete');
  assert.equal((await lastAnswerText(page)).trim(), 'Recovered answer.');
  assert.equal(await page.getByTestId('message-assistant').count(), 1, 'the failed answer was replaced');
});
