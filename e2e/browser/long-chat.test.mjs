// A chat longer than the model's context window: its older messages are summarised before the answer, which says
// so with the summary readable; the gauge by the composer shows what the branch used against the window; a pinned
// message stays pinned across a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, lastAnswerText, screenshot } from '../support/browser.mjs';

const USER = 'long@example.com';
const WINDOW = 4096;
let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 1, env: { MODEL_CONTEXT_TOKENS: `fake-model=${WINDOW}` } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A chat of `count` messages of about 400 characters each, one branch, brought in through the import. */
async function importLongChat(count) {
  const start = Date.parse('2026-11-01T09:00:00Z');
  const messages = [];
  for (let i = 0; i < count; i += 1) {
    const role = i % 2 === 0 ? 'user' : 'assistant';
    const text = `Message ${i + 1} (${role}): ${'the project notes go on about budgets, people and dates. '.repeat(7)}`;
    messages.push({
      id: randomUUID(),
      role,
      parts: [{ type: 'text', text }],
      metadata: {
        status: 'complete',
        created_at: new Date(start + i * 60_000).toISOString(),
        seq: i + 1,
        ...(i > 0 ? { parent_id: messages[i - 1].id } : {}),
      },
    });
  }
  const body = { version: 1, title: 'A long project', created_at: new Date(start).toISOString(), scope: 'active', messages };
  const response = await fetch(`${stack.url}/api/chats/import`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-email': USER },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return (await response.json()).id;
}

test('a chat over the window is summarised, the gauge shows what it used, and a pin stays', async () => {
  const messages = 150;
  const chatId = await importLongChat(messages);
  const page = await pageFor(browser, stack.url, USER);
  await openApp(page, `/chat/${chatId}`);
  await page.getByTestId('message-assistant').last().waitFor();
  assert.equal(await page.getByTestId('context-gauge').count(), 0, 'no figures yet: no gauge');

  await send(page, 'What did we decide about the budget?');
  await waitForStatus(page, 'complete', 60_000);
  assert.equal((await lastAnswerText(page)).includes('You said: What did we decide about the budget?'), true);

  // The answer says the older messages were summarised, and the summary opens.
  const notice = page.getByTestId('message-assistant').last().getByTestId('summary-notice');
  await notice.waitFor();
  const summary = notice.locator('summary');
  const [, covered] = (await summary.innerText()).match(/^(\d+) earlier messages summarised$/) ?? [];
  assert.ok(Number(covered) > 0 && Number(covered) < messages, `a part of the chat is summarised (${covered})`);
  const text = notice.getByTestId('summary-text');
  assert.ok(await text.isHidden(), 'the summary is folded');
  await summary.focus();
  await page.keyboard.press('Enter');
  await text.waitFor();
  assert.match(await text.innerText(), /^Summary of the earlier conversation \(\d+ characters read\): facts kept\.$/);

  // The gauge: the tokens the branch used at this answer against the 4,096 of the window.
  const gauge = page.getByTestId('context-gauge');
  await gauge.waitFor();
  assert.equal(await gauge.getAttribute('role'), 'meter');
  assert.equal(await gauge.getAttribute('aria-valuemax'), String(WINDOW));
  const used = Number(await gauge.getAttribute('aria-valuenow'));
  assert.ok(used > 500 && used <= WINDOW, `the prompt fits the window (${used})`);
  assert.match(await gauge.innerText(), /^\d(\.\d)?k \/ 4k tokens$/);
  assert.equal(await gauge.getAttribute('aria-valuetext'), await gauge.innerText());
  assert.equal(await gauge.getAttribute('aria-label'), 'Context window used');
  await screenshot(page, 'long-chat-summary');

  // Pin the question just asked, and an older answer: the toggles say so, and so does the server after a reload.
  const question = page.getByTestId('message-user').last();
  await question.hover();
  const pin = question.getByTestId('pin-message');
  assert.equal(await pin.getAttribute('aria-pressed'), 'false');
  assert.equal(await pin.getAttribute('aria-label'), 'Pin message');
  await pin.click();
  await question.getByTestId('pin-marker').waitFor();
  assert.equal(await question.getByTestId('pin-message').getAttribute('aria-pressed'), 'true');
  assert.equal(
    await page.evaluate(() => document.activeElement?.getAttribute('data-testid')),
    'pin-message',
    'the keyboard stays on the toggle',
  );
  const answer = page.getByTestId('message-assistant').nth(-2);
  await answer.hover();
  await answer.getByTestId('pin-message').click();
  await answer.getByTestId('pin-marker').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="pin-message"][aria-pressed="true"]').length === 2);
  await page.waitForLoadState('networkidle');

  await page.reload();
  await page.getByTestId('message-assistant').last().waitFor();
  const pinned = page.locator('[data-testid="pin-message"][aria-pressed="true"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="pin-message"][aria-pressed="true"]').length === 2);
  assert.equal(await page.getByTestId('message-user').last().getByTestId('pin-marker').count(), 1);
  assert.equal(await page.getByTestId('message-assistant').nth(-2).getByTestId('pin-marker').count(), 1);
  await screenshot(page, 'pinned-message');

  // Unpinned, it stays unpinned.
  await pinned.first().click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="pin-message"][aria-pressed="true"]').length === 1);
  await page.waitForLoadState('networkidle');
  await page.reload();
  await page.getByTestId('message-assistant').last().waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="pin-message"][aria-pressed="true"]').length === 1);
  assert.equal(await page.getByTestId('message-user').last().getByTestId('pin-marker').count(), 1);

  // The gauge is back after the reload, from the stored figures.
  await page.getByTestId('context-gauge').waitFor();
  assert.equal(Number(await page.getByTestId('context-gauge').getAttribute('aria-valuenow')), used);
  assert.deepEqual(page.errors, []);
});
