// Two people using the app never see each other's chats; narrow screens get a collapsible sidebar.
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

test('two users never see each other\'s chats', async () => {
  const alice = await pageFor(browser, stack.url, 'alice@example.com');
  const bob = await pageFor(browser, stack.url, 'bob@example.com');
  await openApp(alice);
  await send(alice, 'Alice private plans');
  await waitForStatus(alice, 'complete');
  const aliceChatUrl = alice.url();

  await openApp(bob);
  await send(bob, 'Bob notes');
  await waitForStatus(bob, 'complete');
  await bob.reload();
  await bob.getByTestId('chat-item').first().waitFor();
  const bobTitles = await bob.getByTestId('chat-link').allInnerTexts();
  assert.deepEqual(bobTitles.map((t) => t.trim()), ['Bob notes']);

  // Bob opening Alice's chat URL sees nothing of it.
  await bob.goto(aliceChatUrl.replace(stack.url, ''));
  await bob.getByTestId('load-error').waitFor();
  assert.equal(await bob.getByTestId('message-user').count(), 0);
  assert.ok(!(await bob.content()).includes('Alice private plans'));
  await screenshot(bob, 'other-users-chat');

  await bob.getByTestId('chat-search').fill('Alice');
  await bob.getByTestId('no-chats').waitFor();

  await alice.reload();
  await alice.getByTestId('chat-item').first().waitFor();
  assert.deepEqual((await alice.getByTestId('chat-link').allInnerTexts()).map((t) => t.trim()), ['Alice private plans']);
});

test('the 360 px layout hides the sidebar behind a menu button', async () => {
  const page = await pageFor(browser, stack.url, 'mobile@example.com', { width: 360, height: 740 });
  await openApp(page);
  await send(page, 'Hello from a phone [[fake tokens=30]]');
  await waitForStatus(page, 'complete');
  const sidebar = page.getByTestId('sidebar');
  const box = await sidebar.boundingBox();
  assert.ok(!box || box.x + box.width <= 1, 'the sidebar is off screen');
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scroll <= 360, `no horizontal scrolling (${scroll}px)`);
  await screenshot(page, 'mobile-chat');

  await page.getByTestId('toggle-sidebar').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="sidebar"]').getBoundingClientRect().x >= 0);
  await screenshot(page, 'mobile-sidebar');
  await page.getByTestId('chat-link').first().click();
  await page.waitForFunction(() => document.querySelector('[data-testid="sidebar"]').getBoundingClientRect().right <= 1);
});

test('the dark theme toggles and is remembered', async () => {
  const page = await pageFor(browser, stack.url, 'theme@example.com');
  await openApp(page);
  const before = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.getByTestId('theme-toggle').click();
  const after = await page.evaluate(() => document.documentElement.dataset.theme);
  assert.notEqual(after, before);
  await page.reload();
  await page.getByTestId('composer-input').waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), after);
  await screenshot(page, `theme-${after}`);
});
