// Chatting: answers stream in, history survives a reload, chats keep separate histories.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, numberedText } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, lastAnswerText, waitForStatus, screenshot } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 15 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('messages stream in token by token and the history survives a reload', async () => {
  const page = await pageFor(browser, stack.url, 'ada@example.com');
  await openApp(page);
  await page.getByTestId('greeting').waitFor();
  await screenshot(page, 'empty-state');

  const sentAt = Date.now();
  await send(page, 'First question [[fake tokens=60 delay_ms=25]]');
  // The answer is visible while it is still being written.
  await page.waitForFunction(() => {
    const answer = document.querySelector('[data-testid="answer-text"]');
    return answer && answer.innerText.includes('w3');
  });
  const firstTokenPaintedMs = Date.now() - sentAt;
  const partial = await lastAnswerText(page);
  assert.ok(partial.length < numberedText(60).length, 'saw a partial answer');
  assert.match(page.url(), /\/chat\/[0-9a-f-]{36}$/, 'the URL names the new chat');
  await screenshot(page, 'streaming');
  await waitForStatus(page, 'complete');
  assert.equal((await lastAnswerText(page)).trim(), numberedText(60));

  await send(page, 'Second question');
  await waitForStatus(page, 'complete');
  await send(page, 'Third question [[fake tokens=5]]');
  await waitForStatus(page, 'complete');
  assert.equal(await page.getByTestId('message-user').count(), 3);
  assert.equal((await page.getByTestId('answer-text').nth(1).innerText()).trim(), 'You said: Second question');
  await screenshot(page, 'conversation');

  await page.reload();
  await page.getByTestId('message-user').nth(2).waitFor();
  assert.equal(await page.getByTestId('message-assistant').count(), 3);
  assert.equal((await page.getByTestId('answer-text').first().innerText()).trim(), numberedText(60));
  // The new chat is in the sidebar with a title derived from the first message.
  await page.getByTestId('chat-item').first().waitFor();
  assert.match(await page.getByTestId('chat-link').first().innerText(), /First question/);
  assert.deepEqual(page.errors, []);
  console.log(`time to first token painted (fake model, 25 ms per token): ${firstTokenPaintedMs} ms`);
});

test('a second chat has its own history', async () => {
  const page = await pageFor(browser, stack.url, 'grace@example.com');
  await openApp(page);
  await send(page, 'Chat one message');
  await waitForStatus(page, 'complete');
  const firstUrl = page.url();

  await page.getByTestId('new-chat').click();
  await page.getByTestId('empty-state').waitFor();
  await send(page, 'Chat two message');
  await waitForStatus(page, 'complete');
  assert.notEqual(page.url(), firstUrl);
  assert.equal(await page.getByTestId('message-user').count(), 1);
  assert.equal(await page.getByTestId('message-user').innerText(), 'Chat two message');

  // Back to the first chat through the sidebar.
  await page.getByTestId('chat-link').filter({ hasText: 'Chat one message' }).click();
  await page.getByTestId('message-user').filter({ hasText: 'Chat one message' }).waitFor();
  assert.equal(await page.getByTestId('message-user').count(), 1);
  assert.equal(page.url(), firstUrl);
  assert.equal(await page.getByTestId('chat-item').count(), 2);
});

test('a suggestion starts a chat and the model picker lists the models', async () => {
  const page = await pageFor(browser, stack.url, 'lin@example.com');
  await openApp(page);
  const options = await page.getByTestId('model-picker').locator('option').allInnerTexts();
  assert.ok(options.length >= 1, 'models are listed');
  await page.getByTestId('suggestion').first().click();
  await waitForStatus(page, 'complete');
  assert.match(await lastAnswerText(page), /You said:/);
  assert.match(await page.getByTestId('identity').innerText(), /lin@example\.com/);
});
