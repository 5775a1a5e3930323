// Versions of a conversation: a question edited in place and an answer regenerated both keep the old version, and
// the switcher under a message goes from one to the other (the choice is the chat's, so it survives a reload); a
// search hit on a version not shown opens that version. Pinned and archived chats in the sidebar.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, pushScenarios } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, lastAnswerText, waitForStatus, screenshot } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 1 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** The question and the answer shown (the chat has one turn). */
async function shown(page) {
  await waitForStatus(page, 'complete');
  assert.equal(await page.getByTestId('message-user').count(), 1);
  return [await page.getByTestId('message-user').locator('.bubble').innerText(), (await lastAnswerText(page)).trim()];
}

/** The "2/3" under the question (`message-user`) or the answer (`message-assistant`), with its label. */
async function version(page, message) {
  const count = page.getByTestId(message).getByTestId('version-count');
  return `${await count.innerText()} (${await count.getAttribute('aria-label')})`;
}

async function activeTestId(page) {
  return page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName);
}

test('edit a question, regenerate an answer, and switch between the versions', async () => {
  const page = await pageFor(browser, stack.url, 'versions@example.com');
  await openApp(page);
  await send(page, 'Tell me about alpha');
  assert.deepEqual(await shown(page), ['Tell me about alpha', 'You said: Tell me about alpha']);
  assert.equal(await page.getByTestId('versions').count(), 0, 'one version: no switcher');

  // Escape cancels the edit and puts the keyboard back on Edit.
  const question = page.getByTestId('message-user');
  await question.hover();
  await question.getByTestId('edit-message').click();
  const box = page.getByTestId('edit-input');
  assert.equal(await box.inputValue(), 'Tell me about alpha');
  assert.equal(await activeTestId(page), 'edit-input', 'the box has the keyboard');
  await box.fill('Not sent');
  await box.press('Escape');
  assert.equal(await page.getByTestId('edit-input').count(), 0);
  assert.equal(await activeTestId(page), 'edit-message');
  assert.deepEqual(await shown(page), ['Tell me about alpha', 'You said: Tell me about alpha']);

  // Ctrl+Enter saves: the new question replaces the old one and its answer streams in place of the old answer.
  await page.keyboard.press('Enter');
  await page.getByTestId('edit-input').fill('Tell me about bravo [[fake tokens=30 delay_ms=20]]');
  await screenshot(page, 'edit-question');
  await page.getByTestId('edit-input').press('Control+Enter');
  await page.getByTestId('message-user').filter({ hasText: 'bravo' }).waitFor();
  assert.equal(await page.getByTestId('message-assistant').count(), 1, 'the old answer is not shown');
  assert.equal(await activeTestId(page), 'composer-input');
  await waitForStatus(page, 'complete');
  assert.match(await page.getByTestId('message-user').innerText(), /Tell me about bravo/);
  assert.equal(await version(page, 'message-user'), '2/2 (Version 2 of 2)');
  const previous = page.getByRole('button', { name: 'Previous version' });
  const next = page.getByRole('button', { name: 'Next version' });
  assert.ok(await previous.isEnabled());
  assert.ok(await next.isDisabled(), 'the newest version is the last');

  await page.reload();
  await page.getByTestId('message-user').filter({ hasText: 'bravo' }).waitFor();
  assert.equal(await version(page, 'message-user'), '2/2 (Version 2 of 2)');

  // Back to the first version: its question and its answer; the choice is the chat's and survives a reload.
  await previous.click();
  await page.getByTestId('message-user').filter({ hasText: 'alpha' }).waitFor();
  assert.deepEqual(await shown(page), ['Tell me about alpha', 'You said: Tell me about alpha']);
  assert.equal(await version(page, 'message-user'), '1/2 (Version 1 of 2)');
  assert.ok(await previous.isDisabled());
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Next version');
  await screenshot(page, 'versions');
  await page.reload();
  await page.getByTestId('message-user').filter({ hasText: 'alpha' }).waitFor();
  assert.equal(await version(page, 'message-user'), '1/2 (Version 1 of 2)');

  await next.click();
  await page.getByTestId('message-user').filter({ hasText: 'bravo' }).waitFor();
  assert.match((await shown(page))[1], /^w1 w2 .* w30$/);
  await page.reload();
  await page.getByTestId('message-user').filter({ hasText: 'bravo' }).waitFor();

  // Regenerate keeps the old answer as another version of it.
  await pushScenarios(stack.fakeUrl, [
    { steps: [{ type: 'text', text: 'A second ' }, { type: 'text', text: 'answer.' }, { type: 'done' }] },
  ]);
  await page.getByTestId('regenerate').click();
  await page.getByTestId('message-assistant').getByTestId('versions').waitFor();
  assert.equal((await shown(page))[1], 'A second answer.');
  assert.equal(await version(page, 'message-assistant'), '2/2 (Version 2 of 2)');
  await page.getByTestId('message-assistant').getByRole('button', { name: 'Previous version' }).click();
  await page.getByTestId('message-assistant').filter({ hasText: 'w30' }).waitFor();
  assert.equal(await version(page, 'message-assistant'), '1/2 (Version 1 of 2)');
  assert.equal(await version(page, 'message-user'), '2/2 (Version 2 of 2)', 'the question stays');

  // A search hit on the version not shown opens that version, without switching the chat to it.
  const results = page.waitForResponse((response) => response.url().includes('q=alpha'));
  await page.getByTestId('chat-search').fill('alpha');
  await (await results).finished();
  await page.getByTestId('chat-link').first().click();
  await page.getByTestId('message-user').filter({ hasText: 'alpha' }).waitFor();
  assert.deepEqual(await shown(page), ['Tell me about alpha', 'You said: Tell me about alpha']);
  await page.reload();
  await page.getByTestId('message-assistant').filter({ hasText: 'w30' }).waitFor();
  assert.match(await page.getByTestId('message-user').innerText(), /bravo/);
  assert.deepEqual(page.errors, []);
});

async function newChat(page, text) {
  await page.getByTestId('new-chat').click();
  await page.getByTestId('empty-state').waitFor();
  await send(page, text);
  await waitForStatus(page, 'complete');
}

/** The titles in a part of the sidebar. */
async function titles(page, part) {
  return page.getByTestId(part).getByTestId('chat-link').allInnerTexts();
}

async function listed(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="chat-list"] > section:not([data-testid]) [data-testid="chat-link"]')].map(
      (a) => a.innerText,
    ),
  );
}

test('pin a chat, archive it and bring it back', async () => {
  const page = await pageFor(browser, stack.url, 'places@example.com');
  await openApp(page);
  await newChat(page, 'Keep in the list');
  await newChat(page, 'Pin me');
  assert.ok(await page.getByTestId('pinned').isHidden(), 'no pinned chats: no section');

  const item = () => page.getByTestId('chat-item').filter({ hasText: 'Pin me' });
  await item().hover();
  await item().getByRole('button', { name: 'Pin chat' }).click();
  await page.getByTestId('pinned').getByText('Pin me').waitFor();
  assert.deepEqual(await listed(page), ['Keep in the list']);
  await page.reload();
  await page.getByTestId('pinned').getByText('Pin me').waitFor();
  assert.deepEqual(await titles(page, 'pinned'), ['Pin me']);
  assert.deepEqual(await listed(page), ['Keep in the list']);
  await screenshot(page, 'pinned');

  // Archiving the open chat keeps it open; it leaves the list for the archived part.
  const url = page.url();
  await item().hover();
  await item().getByRole('button', { name: 'Archive chat' }).click();
  await page.getByTestId('pinned').waitFor({ state: 'hidden' });
  assert.deepEqual(await listed(page), ['Keep in the list']);
  assert.equal(page.url(), url);
  assert.equal(await page.getByTestId('message-user').innerText(), 'Pin me');
  await page.reload();
  await page.getByTestId('chat-item').first().waitFor();
  assert.equal(await page.getByTestId('chat-item').count(), 1, 'archived chats are not listed');
  await page.getByTestId('archived').locator('summary').click();
  await page.getByTestId('archived').getByText('Pin me').waitFor();
  await screenshot(page, 'archived');

  // Brought back, it is pinned again.
  await item().hover();
  await item().getByRole('button', { name: 'Unarchive chat' }).click();
  await page.getByTestId('pinned').getByText('Pin me').waitFor();
  assert.equal(await page.getByTestId('archived').getByTestId('chat-item').count(), 0);
  await page.getByTestId('pinned').getByRole('button', { name: 'Unpin chat' }).click();
  await page.getByTestId('pinned').waitFor({ state: 'hidden' });
  await page.reload();
  await page.getByTestId('chat-item').nth(1).waitFor();
  assert.deepEqual(await listed(page), ['Pin me', 'Keep in the list']);
  assert.deepEqual(page.errors, []);
});
