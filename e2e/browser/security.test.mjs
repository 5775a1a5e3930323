// The app works under its strict Content-Security-Policy, and another site's page cannot act as the user.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, waitForStatus } from '../support/browser.mjs';

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

test('the page is served with a strict policy and runs under it without violations', async () => {
  const response = await fetch(`${stack.url}/`);
  const csp = response.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/=]+'/);
  assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'/);
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('x-frame-options'), 'DENY');

  const page = await pageFor(browser, stack.url, 'csp@example.com');
  await openApp(page);
  await send(page, 'Some **markdown** and `code` [[fake tokens=8]]');
  await waitForStatus(page, 'complete');
  assert.deepEqual(page.errors.filter((e) => /Content Security Policy/i.test(e)), []);
});

test("a cross-site form or fetch cannot create chats as the signed-in user", async () => {
  // The context adds the user's identity header to every request, as the proxy's session cookie would be.
  const page = await pageFor(browser, stack.url, 'victim@example.com');
  await page.goto('about:blank');
  const target = `${stack.url}/api/chats`;
  const formStatus = await Promise.all([
    page.waitForResponse((r) => r.url() === target),
    page.evaluate((action) => {
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = action;
      form.enctype = 'text/plain';
      const field = document.createElement('input');
      field.name = '{"title":"planted","x":"';
      field.value = '"}';
      form.append(field);
      document.body.append(form);
      form.submit();
    }, target),
  ]).then(([r]) => r.status());
  assert.equal(formStatus, 403);
  const other = await page.context().newPage();
  await other.goto('about:blank');
  await other.evaluate(
    (action) => fetch(action, { method: 'POST', mode: 'no-cors', body: '{"title":"planted"}' }).catch(() => {}),
    target,
  );

  const chats = await (await fetch(target, { headers: { 'x-forwarded-email': 'victim@example.com' } })).json();
  assert.deepEqual(chats.chats, [], 'nothing was created');
});
