// A chat model's tools in the browser: a read shows as a tool card with its result and the answer after it; a
// write (deleting another chat) waits with an approval card that survives a reload, and once allowed runs, the same
// answer goes on, the card shows the result and the chat is gone from the sidebar. The model is the fake's default
// chat model (no picking), scripted by `[[fake call=...]]` in the message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, screenshot } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 5 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** Creates a chat through the API, as `email`. */
async function createChat(email, title) {
  const response = await fetch(`${stack.url}/api/chats`, {
    method: 'POST',
    headers: { 'x-forwarded-email': email, 'content-type': 'application/json' },
    body: JSON.stringify({ title }),
  });
  assert.equal(response.status, 201);
  return response.json();
}

const lastAnswer = (page) => page.getByTestId('message-assistant').last();

/** Opens a tool card (a collapsed `<details>`) and returns the text of its result box. */
async function resultOf(card) {
  if ((await card.getAttribute('open')) === null) await card.locator('summary').click();
  const result = card.locator('pre[aria-label="Result"]');
  await result.waitFor();
  return result.innerText();
}

/** Waits until the last answer is complete and its text contains `text`. */
async function waitForAnswer(page, text) {
  await page.waitForFunction((wanted) => {
    const answers = document.querySelectorAll('[data-testid="message-assistant"]');
    const last = answers[answers.length - 1];
    return last?.getAttribute('data-status') === 'complete' && last.innerText.includes(wanted);
  }, text);
}

test('a read tool shows as a card with its result, then the answer, also after a reload', async () => {
  const email = 'tools-read@example.com';
  await createChat(email, 'Lakebase rollout notes');
  const page = await pageFor(browser, stack.url, email);
  await openApp(page);

  await send(page, 'Which chats do I have? [[fake call=list_chats args={"limit":5}]]');
  await waitForAnswer(page, 'Results:');

  const check = async () => {
    const cards = lastAnswer(page).getByTestId('tool-call');
    await cards.first().waitFor();
    assert.equal(await cards.count(), 1);
    const card = cards.first();
    assert.equal(await card.getAttribute('data-status'), 'done');
    assert.match(await card.locator('summary').innerText(), /List chats/);
    assert.match(await resultOf(card), /Lakebase rollout notes/);
    const text = await lastAnswer(page).getByTestId('answer-text').innerText();
    assert.match(text, /\nResults: /, "the answer text after the card");
    assert.match(text, /Lakebase rollout notes/);
  };
  await check();
  await screenshot(page, 'tool-read-card');
  await page.reload();
  await waitForStatus(page, 'complete');
  await check();
  assert.deepEqual(page.errors, []);
});

test('deleting another chat waits for approval across a reload, then runs and the same answer goes on', async () => {
  const email = 'tools-approval@example.com';
  const target = await createChat(email, 'Obsolete offsite notes');
  const page = await pageFor(browser, stack.url, email);
  await openApp(page);
  const targetLink = page.getByTestId('chat-link').filter({ hasText: 'Obsolete offsite notes' });
  await targetLink.waitFor();

  await send(page, `Tidy up [[fake call=delete_chat args={"chat_id":"${target.id}"}]]`);
  await waitForStatus(page, 'complete');

  const waiting = async () => {
    const card = lastAnswer(page).getByTestId('tool-call');
    await card.first().waitFor();
    assert.equal(await card.count(), 1);
    assert.match(await card.first().locator('summary').innerText(), /Delete chat/);
    assert.notEqual(await card.first().getAttribute('data-status'), 'done', 'not run yet');
    const approval = lastAnswer(page).getByTestId('approval');
    await approval.waitFor();
    const shown = await approval.innerText();
    assert.match(shown, /Delete chat/);
    assert.ok(shown.includes(target.id), `the arguments are shown: ${shown}`);
    await approval.getByTestId('approve').waitFor();
    await approval.getByTestId('deny').waitFor();
  };
  await waiting();
  await screenshot(page, 'tool-approval');
  assert.equal((await fetch(`${stack.url}/api/chats/${target.id}`, { headers: { 'x-forwarded-email': email } })).status, 200);

  // A reload while it waits shows the request again.
  await page.reload();
  await waitForStatus(page, 'complete');
  await waiting();
  await targetLink.waitFor();

  await lastAnswer(page).getByTestId('approve').click();
  await waitForAnswer(page, 'Results:');
  assert.equal(await page.getByTestId('message-assistant').count(), 1, 'the same answer went on');
  const after = async () => {
    assert.equal(await lastAnswer(page).getByTestId('approval').count(), 0);
    assert.equal(await lastAnswer(page).getByTestId('approval-outcome').getAttribute('data-state'), 'approved');
    const card = lastAnswer(page).getByTestId('tool-call');
    assert.equal(await card.count(), 1);
    assert.equal(await card.getAttribute('data-status'), 'done');
    assert.match(await resultOf(card), new RegExp(`"deleted":\\s*"${target.id}"`));
    assert.match(await lastAnswer(page).getByTestId('answer-text').innerText(), /\nResults: \{"deleted"/);
  };
  await after();
  await screenshot(page, 'tool-approved');
  assert.equal((await fetch(`${stack.url}/api/chats/${target.id}`, { headers: { 'x-forwarded-email': email } })).status, 404);

  // Gone from the sidebar, also after a reload; the chat of the conversation stays.
  await page.reload();
  await waitForStatus(page, 'complete');
  await page.getByTestId('chat-item').first().waitFor();
  assert.equal(await targetLink.count(), 0);
  assert.equal(await page.getByTestId('chat-item').count(), 1);
  await after();
  assert.deepEqual(page.errors, []);
});

test('the tools menu turns a source off for the chat, and its tools are no longer offered', async () => {
  const email = 'tools-menu@example.com';
  const page = await pageFor(browser, stack.url, email);
  await openApp(page);
  const menu = page.getByTestId('tools-menu');
  await menu.waitFor();
  assert.match(await menu.locator('summary').innerText(), /Tools 1\/1/);
  await menu.locator('summary').click();
  const records = menu.locator('input[data-source="records"]');
  assert.equal(await records.isChecked(), true);
  await records.click();
  await page.waitForFunction(() => /Tools 0\/1/.test(document.querySelector('[data-testid="tools-menu"] summary')?.textContent ?? ''));

  // The new chat takes the choice with its first message: a call of a records tool is then no tool at all.
  await send(page, 'List them [[fake call=list_chats]]');
  await waitForStatus(page, 'complete');
  const chatId = new URL(page.url()).pathname.split('/').pop();
  const headers = { 'x-forwarded-email': email };
  const chat = await (await fetch(`${stack.url}/api/chats/${chatId}`, { headers })).json();
  assert.deepEqual(chat.tools, []);
  const page1 = await (await fetch(`${stack.url}/api/chats/${chatId}/messages`, { headers })).json();
  const call = page1.messages.at(-1).parts.find((part) => part.type === 'dynamic-tool');
  assert.equal(call.state, 'output-error');
  assert.match(call.errorText, /no tool named `list_chats`/);
  assert.equal(await lastAnswer(page).getByTestId('tool-call').first().getAttribute('data-status'), 'failed');

  // Turned on again in the existing chat, the choice is saved at once.
  if ((await menu.getAttribute('open')) === null) await menu.locator('summary').click();
  await menu.locator('input[data-source="records"]').check();
  await page.waitForFunction(async ([url, id, who]) => {
    const response = await fetch(`${url}/api/chats/${id}`, { headers: { 'x-forwarded-email': who } });
    return (await response.json()).tools?.includes('records');
  }, [stack.url, chatId, email]);
  await page.reload();
  await page.getByTestId('tools-menu').waitFor();
  assert.match(await page.getByTestId('tools-menu').locator('summary').innerText(), /Tools 1\/1/);
  assert.deepEqual(page.errors, []);
});
