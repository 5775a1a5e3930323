// Headless Chromium from Debian, driven by playwright-core (no browser download), and helpers to act like a
// user: pages per user (identity through the forwarded-email header the Databricks Apps proxy would add),
// screenshots saved as test artifacts.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const artifacts = path.resolve(here, '..', 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });

/** Launches Chromium. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh browser context and page signed in as `email` (via the proxy header). */
export async function pageFor(browser, baseUrl, email, { width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({
    baseURL: baseUrl,
    viewport: { width, height },
    extraHTTPHeaders: { 'x-forwarded-email': email },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.errors = errors;
  return page;
}

/** Opens the app and waits until it has mounted. */
export async function openApp(page, pathname = '/') {
  await page.goto(pathname);
  await page.getByTestId('composer-input').waitFor();
}

/** Saves a screenshot of the page under e2e/artifacts/. */
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: false });
}

/** Types a message and sends it with Enter. */
export async function send(page, text) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await input.press('Enter');
}

/** The text of the last answer. */
export async function lastAnswerText(page) {
  return page.getByTestId('answer-text').last().innerText();
}

/** Waits until the last answer has this status (data-status attribute). */
export async function waitForStatus(page, status, timeout = 20_000) {
  await page.waitForFunction(
    (wanted) => {
      const answers = document.querySelectorAll('[data-testid="message-assistant"]');
      const last = answers[answers.length - 1];
      return last && last.getAttribute('data-status') === wanted;
    },
    status,
    { timeout },
  );
}

/** Words of `w1 w2 ... wN` text, for duplicate/gap checks. */
export function words(text) {
  return text.split(/\s+/).filter(Boolean);
}
