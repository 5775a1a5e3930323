// The initial load budget: everything the browser fetches before the app runs (index.html, CSS, JS, WebAssembly),
// compressed as served, stays within 300 KB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { measureInitialLoad } from '../support/initial-load.mjs';

const BUDGET_BYTES = 300_000;
let stack;

before(async () => {
  stack = await startStack();
});

after(async () => {
  await stack?.stop();
});

test('the initial load is within 300 KB on the wire', async () => {
  const { rows, total } = await measureInitialLoad(stack.url);
  assert.ok(rows.some((row) => row.name.endsWith('.wasm')), 'the WebAssembly is part of the initial load');
  for (const row of rows.filter((r) => r.name !== 'index.html')) {
    assert.equal(row.encoding, 'br', `${row.name} is served compressed`);
  }
  console.log(`initial load: ${total} bytes on the wire`);
  assert.ok(total <= BUDGET_BYTES, `${total} bytes is over the ${BUDGET_BYTES} budget`);
});
