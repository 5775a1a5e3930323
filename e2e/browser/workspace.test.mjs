// The app configured as Databricks Apps configures it: the workspace host and the app's service principal, no
// model URL or key. The picker offers the workspace's ready chat endpoints, and answers come through OAuth.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, numberedText } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus, lastAnswerText } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({
    tokenDelayMs: 1,
    fakeArgs: [
      '--require-model-auth',
      '--client', 'app-sp:app-secret',
      '--endpoint', 'databricks-claude-sonnet-4-5',
      '--endpoint', 'databricks-gpt-oss-120b',
    ],
    env: {
      LLM_BASE_URL: '',
      DATABRICKS_HOST: '{fakeUrl}',
      DATABRICKS_CLIENT_ID: 'app-sp',
      DATABRICKS_CLIENT_SECRET: 'app-secret',
      DATABRICKS_SERVING_ENDPOINT: 'databricks-claude-sonnet-4-5',
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the picker lists the workspace endpoints and a picked one answers through OAuth', async () => {
  const page = await pageFor(browser, stack.url, 'alice@example.com');
  await openApp(page);
  const picker = page.getByTestId('model-picker');
  // The list arrives after the app mounts; read it once it has.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="model-picker"] option').length >= 2);
  const options = (await picker.locator('option').allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(options, ['Claude Sonnet 4.5', 'GPT OSS 120B']);

  await picker.selectOption({ label: 'GPT OSS 120B' });
  await send(page, 'Hello [[fake tokens=6]]');
  await waitForStatus(page, 'complete');
  assert.equal((await lastAnswerText(page)).trim(), numberedText(6));

  const requests = await (await fetch(`${stack.fakeUrl}/__fake/requests`)).json();
  const call = requests.find((r) => r.path.endsWith('/chat/completions'));
  assert.equal(call.body.model, 'databricks-gpt-oss-120b');
  assert.match(call.authorization, /^Bearer fake-oauth-/, 'an OAuth token, not the client secret');
});
