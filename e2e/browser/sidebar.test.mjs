// The chat list: rename, search, delete.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, screenshot } from '../support/browser.mjs';

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

async function newChat(page, text) {
  await page.getByTestId('new-chat').click();
  await page.getByTestId('empty-state').waitFor();
  await send(page, text);
  await waitForStatus(page, 'complete');
}

test('rename a chat inline', async () => {
  const page = await pageFor(browser, stack.url, 'rename@example.com');
  await openApp(page);
  await newChat(page, 'Original title here');
  const item = page.getByTestId('chat-item').first();
  await item.hover();
  await item.getByTestId('rename-chat').click();
  const input = page.getByTestId('rename-input');
  await input.fill('Quarterly planning');
  await input.press('Enter');
  await page.getByTestId('chat-link').filter({ hasText: 'Quarterly planning' }).waitFor();
  assert.equal(await page.getByTestId('chat-title').innerText(), 'Quarterly planning');
  await screenshot(page, 'renamed');

  await page.reload();
  await page.getByTestId('chat-link').filter({ hasText: 'Quarterly planning' }).waitFor();
  // Escape cancels.
  const again = page.getByTestId('chat-item').first();
  await again.hover();
  await again.getByTestId('rename-chat').click();
  await page.getByTestId('rename-input').fill('Not this');
  await page.getByTestId('rename-input').press('Escape');
  await page.getByTestId('chat-link').filter({ hasText: 'Quarterly planning' }).waitFor();
});

test('search finds chats by title and by message text', async () => {
  const page = await pageFor(browser, stack.url, 'search@example.com');
  await openApp(page);
  await newChat(page, 'Lakebase migration checklist');
  await newChat(page, 'Holiday recipes');
  await newChat(page, 'Unrelated greeting');
  assert.equal(await page.getByTestId('chat-item').count(), 3);

  await page.getByTestId('chat-search').fill('lakeb');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-item"]').length === 1);
  assert.match(await page.getByTestId('chat-link').first().innerText(), /Lakebase/);
  assert.ok(!(await page.getByTestId('chat-list').innerText()).includes('Holiday'));
  await screenshot(page, 'search');

  // Content match: the fake echoed "You said: Holiday recipes" in that chat.
  await page.getByTestId('chat-search').fill('recipes');
  await page.getByTestId('chat-link').filter({ hasText: 'Holiday' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-item"]').length === 1);

  await page.getByTestId('chat-search').fill('zzzz-nothing');
  await page.getByTestId('no-chats').waitFor();
  await page.getByTestId('chat-search').fill('');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-item"]').length === 3);
});

test('delete a chat after confirming, and it is gone', async () => {
  const page = await pageFor(browser, stack.url, 'delete@example.com');
  await openApp(page);
  await newChat(page, 'Keep me');
  await newChat(page, 'Delete me');
  const doomed = page.getByTestId('chat-item').filter({ hasText: 'Delete me' });
  await doomed.hover();
  await doomed.getByTestId('delete-chat').click();
  await page.getByTestId('cancel-delete').click();
  assert.equal(await page.getByTestId('chat-item').count(), 2, 'cancel keeps it');

  await doomed.hover();
  await doomed.getByTestId('delete-chat').click();
  await screenshot(page, 'confirm-delete');
  await page.getByTestId('confirm-delete').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-item"]').length === 1);
  // The deleted chat was open: the app went back to a new chat.
  await page.getByTestId('empty-state').waitFor();
  await page.reload();
  await page.getByTestId('chat-item').first().waitFor();
  assert.equal(await page.getByTestId('chat-item').count(), 1);
  assert.match(await page.getByTestId('chat-link').first().innerText(), /Keep me/);
});
