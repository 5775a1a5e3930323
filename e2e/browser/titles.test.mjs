// Titles on, as by default: a new chat's title is written by the same model while the answer streams. The page
// must show each word of the answer once at every moment, live and after a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, numberedText } from '../support/stack.mjs';
import { launchBrowser, pageFor, openApp, send, lastAnswerText, waitForStatus, screenshot, words } from '../support/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ tokenDelayMs: 15, env: { TITLE_GENERATION: 'true' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** Records the last answer's text at every change of the page, until `stop()` returns the recorded texts. */
async function recordAnswerTexts(page) {
  await page.evaluate(() => {
    window.__answerTexts = [];
    const record = () => {
      const answers = document.querySelectorAll('[data-testid="answer-text"]');
      const last = answers[answers.length - 1];
      if (last) window.__answerTexts.push(last.innerText.trim());
    };
    window.__answerObserver = new MutationObserver(record);
    window.__answerObserver.observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  return {
    async stop() {
      return page.evaluate(() => {
        window.__answerObserver.disconnect();
        return window.__answerTexts;
      });
    },
  };
}

/** Asserts that every recorded text is the start of `expected`, word for word, with no word twice. */
function assertEveryMomentIsAPrefix(texts, expected) {
  const want = words(expected);
  for (const text of texts) {
    const got = words(text);
    assert.ok(got.length <= want.length, `more words on the page than in the answer: ${got.length}`);
    // The last word may be cut mid-token; every other one must be the answer's word at that position.
    got.slice(0, -1).forEach((word, i) => assert.equal(word, want[i], `word ${i + 1} while streaming: "${text.slice(0, 120)}…"`));
  }
}

test('a title arriving mid-answer never repeats the beginning of the answer on the page', async () => {
  const page = await pageFor(browser, stack.url, 'titles@example.com');
  await openApp(page);
  const recorder = await recordAnswerTexts(page);

  await send(page, 'Count slowly [[fake tokens=100 delay_ms=20]]');
  // The model's title (32 tokens of the same script) replaces the derived one while the answer streams.
  await page.waitForFunction(() => document.querySelector('[data-testid="chat-link"]')?.innerText.startsWith('w1 w2'));
  const atTitle = words(await lastAnswerText(page)).length;
  await screenshot(page, 'title-mid-answer');
  await waitForStatus(page, 'complete', 30_000);
  const texts = await recorder.stop();

  assert.ok(atTitle > 0 && atTitle < 100, `the title arrived mid-answer (after ${atTitle} words)`);
  assert.ok(texts.length > 20, `the answer was seen while streaming (${texts.length} states)`);
  assertEveryMomentIsAPrefix(texts, numberedText(100));
  assert.equal((await lastAnswerText(page)).trim(), numberedText(100));
  assert.deepEqual(page.errors, []);
});

test('a reload after the title continues the answer without repeating it', async () => {
  const page = await pageFor(browser, stack.url, 'titles-reload@example.com');
  await openApp(page);
  await send(page, 'Count again [[fake tokens=120 delay_ms=25]]');
  await page.waitForFunction(() => document.querySelector('[data-testid="chat-link"]')?.innerText.startsWith('w1 w2'));

  await page.reload();
  await page.getByTestId('message-assistant').waitFor();
  const recorder = await recordAnswerTexts(page);
  await waitForStatus(page, 'complete', 30_000);
  const texts = await recorder.stop();

  assertEveryMomentIsAPrefix(texts, numberedText(120));
  const seen = words((await lastAnswerText(page)).trim());
  assert.equal(seen.join(' '), numberedText(120));
  assert.equal(new Set(seen).size, seen.length, 'no word appears twice');
});
