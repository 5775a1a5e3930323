// An agent in the browser: its tool call as a card, its citations as numbered links, an approval allowed and one
// denied (each continuing the same answer), and a vote with a comment that survives a reload. The agent is the fake
// workspace's MLflow AgentServer app, offered in the picker through CHAT_AGENTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, screenshot } from '../support/browser.mjs';

const AGENT = 'assistant';
let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 5, env: { CHAT_AGENTS: `${AGENT}={fakeUrl}/apps/assistant` } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A page on a new chat with the agent picked. */
async function agentPage(email) {
  const page = await pageFor(browser, stack.url, email);
  await openApp(page);
  const picker = page.getByTestId('model-picker');
  await picker.waitFor();
  await picker.selectOption(AGENT);
  return page;
}

const lastAnswer = (page) => page.getByTestId('message-assistant').last();

test('a tool call shows as a card and citations as numbered links, also after a reload', async () => {
  const page = await agentPage('agent-tools@example.com');

  await send(page, 'Where is Lakebase documented? [[fake tool=1 cite=2]]');
  await waitForStatus(page, 'complete');

  const check = async () => {
    const card = lastAnswer(page).getByTestId('tool-call');
    await card.first().waitFor();
    assert.equal(await card.count(), 1);
    assert.equal(await card.first().getAttribute('data-status'), 'done');
    assert.match(await card.first().innerText(), /search/i);
    const sources = lastAnswer(page).getByTestId('source');
    assert.equal(await sources.count(), 2);
    const first = await sources.first().innerText();
    assert.match(first, /^\s*1/, `numbered: ${first}`);
    assert.match((await sources.first().getAttribute('href')) ?? '', /^https:\/\//);
  };
  await check();
  await screenshot(page, 'agent-tool-card');
  await page.reload();
  await waitForStatus(page, 'complete');
  await check();
});

test('an approval allowed and one denied both continue the same answer', async () => {
  const page = await agentPage('agent-approvals@example.com');

  // Allowed.
  await send(page, 'Email ops [[fake approval=1]]');
  await waitForStatus(page, 'complete');
  const approval = lastAnswer(page).getByTestId('approval');
  await approval.waitFor();
  await screenshot(page, 'agent-approval');
  // A reload while it waits shows the request again.
  await page.reload();
  await waitForStatus(page, 'complete');
  await lastAnswer(page).getByTestId('approve').click();
  await page.waitForFunction(() => {
    const answers = document.querySelectorAll('[data-testid="message-assistant"]');
    const last = answers[answers.length - 1];
    return last?.innerText.includes('Approved: sent.') && last.getAttribute('data-status') === 'complete';
  });
  assert.equal(await page.getByTestId('message-assistant').count(), 1, 'the same answer went on');
  assert.equal(await lastAnswer(page).getByTestId('approval-outcome').getAttribute('data-state'), 'approved');

  // Denied, with a reason, in the same chat (the agent picked again: the picker's options may be drawn after the
  // chat's agent was chosen, so the test does not depend on which comes first).
  await page.getByTestId('model-picker').selectOption(AGENT);
  await send(page, 'Email them again [[fake approval=1]]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="message-assistant"]').length === 2);
  await waitForStatus(page, 'complete');
  await lastAnswer(page).getByTestId('deny').click();
  await lastAnswer(page).locator('.approval-reason textarea, .approval-reason input').fill('not before Monday');
  await lastAnswer(page).getByTestId('confirm-deny').click();
  await page.waitForFunction(() => {
    const answers = document.querySelectorAll('[data-testid="message-assistant"]');
    const last = answers[answers.length - 1];
    return last?.innerText.includes('Denied: not before Monday.') && last.getAttribute('data-status') === 'complete';
  });
  assert.equal(await lastAnswer(page).getByTestId('approval-outcome').getAttribute('data-state'), 'denied');
  await page.reload();
  await waitForStatus(page, 'complete');
  assert.match(await lastAnswer(page).innerText(), /Denied: not before Monday\./);
});

test('a vote with a comment is kept across a reload', async () => {
  const page = await agentPage('agent-votes@example.com');
  await send(page, 'Summarise the plan [[fake tokens=12]]');
  await waitForStatus(page, 'complete');

  await lastAnswer(page).getByTestId('thumb-down').click();
  const form = lastAnswer(page).getByTestId('feedback-form');
  if (!(await form.isVisible())) await lastAnswer(page).getByTestId('feedback-comment').click();
  await lastAnswer(page).getByTestId('feedback-comment-input').fill('Missed the budget.');
  await lastAnswer(page).getByTestId('feedback-send').click();
  await page.waitForFunction(() => !document.querySelector('[data-testid="feedback-form"]:not([hidden])'));

  await page.reload();
  await waitForStatus(page, 'complete');
  const down = lastAnswer(page).getByTestId('thumb-down');
  await down.waitFor();
  assert.equal(await down.getAttribute('aria-pressed'), 'true');
  assert.equal(await lastAnswer(page).getByTestId('thumb-up').getAttribute('aria-pressed'), 'false');
  const stored = await page.evaluate(async () => {
    const chats = await (await fetch('/api/chats')).json();
    const page = await (await fetch(`/api/chats/${chats.chats[0].id}/messages`)).json();
    return page.messages.at(-1).metadata.feedback;
  });
  assert.equal(stored.rating, 'down');
  assert.equal(stored.comment, 'Missed the budget.');
});
