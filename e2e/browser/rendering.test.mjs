// What the model writes is rendered as markdown and never as live HTML.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, screenshot } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 2 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('markdown with a table, a list and a highlighted code block with a copy button', async () => {
  const page = await pageFor(browser, stack.url, 'md@example.com');
  await openApp(page);
  await send(page, 'Show markdown [[fake markdown=1]]');
  await waitForStatus(page, 'complete');
  const answer = page.getByTestId('answer-text').last();
  assert.equal(await answer.locator('h2').innerText(), 'Result');
  assert.equal(await answer.locator('table tr').count(), 3);
  assert.equal(await answer.locator('ul > li').count(), 2);
  assert.equal(await answer.locator('strong').innerText(), 'bold');
  const code = answer.locator('.code-block code');
  assert.match(await code.innerText(), /println!\("hello"\);/);
  assert.ok((await code.locator('span').count()) > 0, 'the code is highlighted');
  await screenshot(page, 'markdown');

  await answer.getByTestId('copy-code').click();
  await answer.getByTestId('copy-code').filter({ hasText: 'Copied' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(copied, /fn main\(\) \{\n {4}println!\("hello"\);\n\}/);
});

test('html and scripts written by the model stay inert text', async () => {
  const page = await pageFor(browser, stack.url, 'xss@example.com');
  await openApp(page);
  await send(page, 'Try to inject [[fake html=1]]');
  await waitForStatus(page, 'complete');
  const answer = page.getByTestId('answer-text').last();
  assert.equal(await answer.locator('script').count(), 0);
  assert.equal(await answer.locator('img').count(), 0);
  assert.equal(await answer.locator('a[href^="javascript"]').count(), 0);
  assert.match(await answer.innerText(), /<script>window.__pwned = 1<\/script>/, 'shown as text');
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
  await screenshot(page, 'inert-html');

  // The same after a reload, when the answer comes from the database.
  await page.reload();
  await page.getByTestId('message-assistant').waitFor();
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.getByTestId('answer-text').last().locator('script, img').count(), 0);
});
