// Sharing a chat as a read-only link: its owner makes one from the chat's menu, another user opens it (no sidebar,
// no controls), copies it into their own chats and goes on there; once revoked the link leads nowhere. Exporting a
// chat downloads it as Markdown or JSON.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, lastAnswerText, screenshot } from '../support/browser.mjs';

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

async function activeTestId(page) {
  return page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName);
}

/** Opens the share dialog from the chat's menu, with the keyboard. */
async function openShareDialog(page) {
  await page.getByTestId('chat-menu-button').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('share-chat').waitFor();
  await page.getByTestId('share-chat').press('Enter');
  const dialog = page.getByTestId('share-dialog');
  await dialog.waitFor();
  await page.waitForFunction(() => !document.querySelector('[data-testid="share-dialog"]').textContent.includes('Loading…'));
  return dialog;
}

test('a shared link shows the chat read-only, continues in the viewer\'s chats and ends when revoked', async () => {
  const alice = await pageFor(browser, stack.url, 'alice@example.com');
  await openApp(alice);
  await send(alice, 'Plan the <launch> party');
  await waitForStatus(alice, 'complete');
  const aliceChat = alice.url();

  // The menu opens and closes from the keyboard.
  await alice.getByTestId('chat-menu-button').focus();
  await alice.keyboard.press('Enter');
  await alice.getByTestId('share-chat').waitFor();
  await alice.keyboard.press('Escape');
  await alice.getByTestId('share-chat').waitFor({ state: 'hidden' });
  assert.equal(await activeTestId(alice), 'chat-menu-button');

  const dialog = await openShareDialog(alice);
  await dialog.getByTestId('no-links').waitFor();
  await dialog.getByTestId('create-link').click();
  const link = dialog.getByTestId('share-url');
  await link.waitFor();
  const url = await link.inputValue();
  assert.match(url, new RegExp(`^${stack.url}/share/[0-9a-f-]{36}$`));
  assert.equal(await activeTestId(alice), 'copy-link', 'the keyboard is on Copy');
  await alice.keyboard.press('Enter');
  await dialog.getByTestId('share-status').filter({ hasText: 'Link copied.' }).waitFor();
  assert.equal(await alice.evaluate(() => navigator.clipboard.readText()), url);
  assert.equal(await dialog.getByTestId('share-link').count(), 1);
  await screenshot(alice, 'share-dialog');
  await alice.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await activeTestId(alice), 'chat-menu-button', 'the keyboard is back on the menu');

  // Another user sees the chat, read-only, without the sidebar.
  const bob = await pageFor(browser, stack.url, 'bob@example.com');
  const sharePath = new URL(url).pathname;
  await bob.goto(sharePath);
  const shared = bob.getByTestId('share-page');
  await shared.getByTestId('message-assistant').waitFor();
  assert.equal(await shared.getByTestId('chat-title').innerText(), 'Plan the <launch> party');
  assert.match(await shared.getByTestId('share-meta').innerText(), /^Shared by alice@example\.com · \S/);
  assert.equal(await shared.getByTestId('message-user').innerText(), 'Plan the <launch> party');
  assert.equal((await shared.getByTestId('answer-text').innerText()).trim(), 'You said: Plan the <launch> party');
  for (const absent of ['sidebar', 'composer', 'edit-message', 'pin-message', 'regenerate', 'thumb-up']) {
    assert.equal(await bob.getByTestId(absent).count(), 0, `no ${absent} on a shared chat`);
  }
  assert.equal(await bob.title(), 'Plan the <launch> party');
  await screenshot(bob, 'shared-chat');

  // Continue in my chats: a chat of Bob's with the same messages, which he can go on with.
  await bob.getByTestId('continue-chat').click();
  await bob.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
  await bob.getByTestId('message-assistant').waitFor();
  assert.notEqual(new URL(bob.url()).pathname, new URL(aliceChat).pathname);
  assert.equal(await bob.getByTestId('message-user').innerText(), 'Plan the <launch> party');
  await bob.getByTestId('chat-item').first().waitFor();
  assert.deepEqual(await bob.getByTestId('chat-link').allInnerTexts(), ['Plan the <launch> party']);
  await send(bob, 'And the guest list');
  await bob.getByTestId('message-assistant').nth(1).waitFor();
  await waitForStatus(bob, 'complete');
  assert.equal((await lastAnswerText(bob)).trim(), 'You said: And the guest list');
  await bob.reload();
  await bob.getByTestId('message-user').nth(1).waitFor();
  assert.equal(await bob.getByTestId('message-user').count(), 2);

  // Alice's chat did not change.
  await alice.reload();
  await alice.getByTestId('message-assistant').waitFor();
  assert.equal(await alice.getByTestId('message-user').count(), 1);

  // Revoked, the link leads nowhere.
  const again = await openShareDialog(alice);
  await again.getByTestId('share-link').waitFor();
  await again.getByTestId('revoke-link').click();
  await again.getByTestId('no-links').waitFor();
  await again.getByTestId('share-status').filter({ hasText: 'Link revoked.' }).waitFor();
  await again.getByTestId('close-dialog').click();
  await again.waitFor({ state: 'hidden' });

  await bob.goto(sharePath);
  await bob.getByTestId('share-not-found').waitFor();
  assert.match(await bob.getByTestId('share-not-found').innerText(), /This link was revoked or never existed\./);
  assert.equal(await bob.getByTestId('continue-chat').count(), 0);
  assert.equal(await bob.getByTestId('message-user').count(), 0);
  await screenshot(bob, 'share-revoked');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(
    bob.errors.filter((e) => !e.includes('404')),
    [],
    'nothing but the revoked link failed',
  );
});

test('a chat exports as Markdown and JSON, of the branch shown or of every version', async () => {
  const page = await pageFor(browser, stack.url, 'exporter@example.com');
  await openApp(page);
  await send(page, 'Export me');
  await waitForStatus(page, 'complete');
  const chatId = new URL(page.url()).pathname.split('/').pop();

  await page.getByTestId('chat-menu-button').click();
  const links = {};
  for (const format of ['markdown', 'json']) {
    for (const scope of ['active', 'all']) {
      const link = page.getByTestId(`export-${format}-${scope}`);
      assert.equal(await link.getAttribute('download'), '', `${format}/${scope} downloads`);
      links[`${format}-${scope}`] = await link.getAttribute('href');
    }
  }
  assert.equal(links['markdown-active'], `/api/chats/${chatId}/export?format=markdown&scope=active`);
  assert.equal(links['json-all'], `/api/chats/${chatId}/export?format=json&scope=all`);

  // A click downloads the file (and closes the menu). The file is read with the page's own request: the browser's
  // download does not carry the test's identity header, which the proxy adds in production.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-markdown-active').click()]);
  assert.equal(new URL(download.url()).pathname + new URL(download.url()).search, links['markdown-active']);
  await page.getByTestId('share-chat').waitFor({ state: 'hidden' });
  const file = await page.evaluate(async (href) => {
    const response = await fetch(href);
    return { disposition: response.headers.get('content-disposition'), text: await response.text() };
  }, links['markdown-active']);
  assert.match(file.disposition, /^attachment; filename=".*\.md"$/);
  assert.match(file.text, /Export me/);
  assert.match(file.text, /You said: Export me/);

  const exported = await page.evaluate(async (href) => (await fetch(href)).json(), links['json-all']);
  assert.equal(exported.version, 1);
  assert.deepEqual(
    exported.messages.map((m) => m.role),
    ['user', 'assistant'],
  );
  assert.deepEqual(page.errors, []);
});
