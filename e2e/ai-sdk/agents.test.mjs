// An agent's answer (tool calls, citations, an approval request) streamed to the Vercel AI SDK's own client code,
// for every pinned `ai` version: readUIMessageStream must accept every chunk, and assemble the parts the server
// stores, live and after a resume in the middle. The agent is the fake workspace's MLflow AgentServer app, named
// in CHAT_AGENTS as a Databricks App would be.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as latest from 'ai';
import * as v5 from 'ai-v5-strict';
import * as v6 from 'ai-v6-strict';
import * as v7 from 'ai-v7';
import { startStack } from '../support/stack.mjs';

const USER = 'agent-user@example.com';
const AGENT = 'assistant';
let stack;

before(async () => {
  stack = await startStack({ env: { CHAT_AGENTS: `${AGENT}={fakeUrl}/apps/assistant` } });
});

after(async () => {
  await stack?.stop();
});

function transportFor(sdk) {
  return new sdk.DefaultChatTransport({
    api: `${stack.url}/api/chat`,
    headers: { 'x-forwarded-email': USER },
    body: { model: AGENT },
  });
}

function userMessage(text) {
  return { id: randomUUID(), role: 'user', parts: [{ type: 'text', text }] };
}

async function assemble(sdk, stream) {
  let last;
  let streamError;
  for await (const message of sdk.readUIMessageStream({ stream, onError: (e) => { streamError = e; } })) {
    last = message;
  }
  if (streamError) throw streamError;
  return last;
}

/** The parts that carry content, in a comparable form (AI SDK clients add a step-start for the first step too). */
function content(parts) {
  return parts
    .filter((p) => p.type !== 'step-start')
    .map((p) => {
      switch (p.type) {
        case 'text':
        case 'reasoning':
          return { type: p.type, text: p.text };
        case 'dynamic-tool':
          return { type: p.type, toolCallId: p.toolCallId, toolName: p.toolName, state: p.state, input: p.input, output: p.output };
        case 'source-url':
          return { type: p.type, url: p.url };
        default:
          return { type: p.type, id: p.id, data: p.data };
      }
    });
}

async function stored(chatId) {
  const response = await fetch(`${stack.url}/api/chats/${chatId}/messages`, { headers: { 'x-forwarded-email': USER } });
  const page = await response.json();
  return page.messages.at(-1);
}

for (const [name, sdk] of Object.entries({
  'ai@5.0.60 (strict)': v5,
  'ai@6.0.100 (strict)': v6,
  'ai@6 latest': latest,
  'ai@7': v7,
})) {
  test(`an agent's tool call and citations assemble as the server stores them (${name})`, async () => {
    const chatId = randomUUID();
    const stream = await transportFor(sdk).sendMessages({
      chatId,
      messages: [userMessage('Where is Lakebase documented? [[fake tool=1 cite=2]]')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: new AbortController().signal,
    });

    const answer = await assemble(sdk, stream);

    const tool = answer.parts.find((p) => p.type === 'dynamic-tool');
    assert.equal(tool?.state, 'output-available', JSON.stringify(answer.parts));
    assert.equal(tool.toolName, 'search_docs');
    assert.equal(typeof tool.input, 'object');
    assert.ok(tool.output !== undefined);
    assert.equal(answer.parts.filter((p) => p.type === 'source-url').length, 2);
    const saved = await stored(chatId);
    assert.equal(saved.id, answer.id);
    assert.deepEqual(content(answer.parts), content(saved.parts), 'live and stored answers are the same');
  });

  test(`a resume in the middle of an agent's answer assembles it whole (${name})`, async () => {
    const chatId = randomUUID();
    const transport = transportFor(sdk);
    const abort = new AbortController();
    const stream = await transport.sendMessages({
      chatId,
      messages: [userMessage('Look it up [[fake tool=1 cite=1 tool_pause_ms=400 delay_ms=10]]')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: abort.signal,
    });
    // Read until the tool call is under way, then drop the connection like a reload.
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || value?.type === 'tool-input-available') break;
    }
    abort.abort();

    const resumed = await transport.reconnectToStream({ chatId });
    assert.ok(resumed, 'the running answer is resumable');
    const answer = await assemble(sdk, resumed);

    const saved = await stored(chatId);
    assert.equal(saved.metadata.status, 'complete');
    assert.deepEqual(content(answer.parts), content(saved.parts));
  });

  test(`an approval request arrives as a tool card and a data part (${name})`, async () => {
    const chatId = randomUUID();
    const stream = await transportFor(sdk).sendMessages({
      chatId,
      messages: [userMessage('Email ops [[fake approval=1]]')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: new AbortController().signal,
    });

    const answer = await assemble(sdk, stream);

    const approval = answer.parts.find((p) => p.type === 'data-approval');
    assert.equal(approval?.data.state, 'requested', JSON.stringify(answer.parts));
    const tool = answer.parts.find((p) => p.type === 'dynamic-tool');
    assert.equal(tool.toolCallId, approval.data.toolCallId);
    assert.equal(tool.callProviderMetadata?.databricks?.serverLabel, 'mail-server');

    // Allowing it continues the same message; the client reads the continuation like any stream.
    const response = await fetch(`${stack.url}/api/chat/${chatId}/approvals/${approval.data.approvalId}`, {
      method: 'POST',
      headers: { 'x-forwarded-email': USER, 'content-type': 'application/json' },
      body: JSON.stringify({ approve: true }),
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /Approved/);
    const saved = await stored(chatId);
    assert.equal(saved.id, answer.id);
    assert.equal(saved.parts.find((p) => p.type === 'data-approval').data.state, 'approved');
  });
}
