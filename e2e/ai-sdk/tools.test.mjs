// A chat model's tool calls, run by this server, streamed to the Vercel AI SDK's own client code, for every pinned
// `ai` version: readUIMessageStream must accept every chunk and assemble exactly the parts the server stores (the
// calls as `dynamic-tool` parts with their output, the step boundaries, the text), live, after a resume in the
// middle, and for a write that waits for the user's approval and goes on in the same message once allowed. The
// model is the fake's default chat model, scripted by `[[fake call=...]]` in the message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as latest from 'ai';
import * as v5 from 'ai-v5-strict';
import * as v6 from 'ai-v6-strict';
import * as v7 from 'ai-v7';
import { startStack } from '../support/stack.mjs';

const USER = 'tools-user@example.com';
let stack;

before(async () => {
  stack = await startStack();
  // A chat the tools will find.
  await createChat('Quarterly plan');
});

after(async () => {
  await stack?.stop();
});

const headers = { 'x-forwarded-email': USER };

async function createChat(title) {
  const response = await fetch(`${stack.url}/api/chats`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ title }),
  });
  assert.equal(response.status, 201);
  return response.json();
}

function transportFor(sdk, options = {}) {
  return new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers, ...options });
}

function userMessage(text) {
  return { id: randomUUID(), role: 'user', parts: [{ type: 'text', text }] };
}

function send(sdk, chatId, text, abortSignal = new AbortController().signal) {
  return transportFor(sdk).sendMessages({
    chatId,
    messages: [userMessage(text)],
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal,
  });
}

/** The message readUIMessageStream assembles from `stream`, on top of `message` when given (a continuation). */
async function assemble(sdk, stream, message) {
  let last;
  let streamError;
  const options = { stream, onError: (e) => { streamError = e; } };
  if (message) options.message = structuredClone(message);
  for await (const assembled of sdk.readUIMessageStream(options)) {
    last = assembled;
  }
  if (streamError) throw streamError;
  return last;
}

async function stored(chatId) {
  const response = await fetch(`${stack.url}/api/chats/${chatId}/messages`, { headers });
  assert.equal(response.status, 200);
  return (await response.json()).messages;
}

/**
 * The client's parts as the server stores them. All fields are compared, with two differences that are the AI SDK's
 * conventions, not content: its clients push a `step-start` for the first step too (the server stores step
 * boundaries only after the first step, `shared::Answer::apply`), and mark their text parts `state: "done"`.
 * Undefined fields are dropped (JSON).
 */
function asStored(parts) {
  assert.equal(parts[0]?.type, 'step-start', 'AI SDK clients start with the first step');
  return JSON.parse(JSON.stringify(parts.slice(1))).map((part) => {
    if (part.type === 'text' || part.type === 'reasoning') delete part.state;
    return part;
  });
}

const tools = (parts) => parts.filter((p) => p.type === 'dynamic-tool');
const textOf = (parts) => parts.filter((p) => p.type === 'text').map((p) => p.text).join('');

// Two parallel calls, their arguments in several pieces each.
const TWO_CALLS = 'call=list_chats args={"limit":5} call=search_chats args={"query":"quarterly"}';

for (const [name, sdk] of Object.entries({
  'ai@5.0.60 (strict)': v5,
  'ai@6.0.100 (strict)': v6,
  'ai@6 latest': latest,
  'ai@7': v7,
})) {
  test(`two parallel tool calls and the answer after them assemble as the server stores them (${name})`, async () => {
    const chatId = randomUUID();
    const stream = await send(sdk, chatId, `What is planned? [[fake ${TWO_CALLS} call_chunks=4]]`);

    const answer = await assemble(sdk, stream);

    const calls = tools(answer.parts);
    assert.deepEqual(
      calls.map((c) => [c.toolName, c.state, c.input]),
      [
        ['list_chats', 'output-available', { limit: 5 }],
        ['search_chats', 'output-available', { query: 'quarterly' }],
      ],
      JSON.stringify(answer.parts),
    );
    assert.ok(calls.every((c) => !c.providerExecuted), 'this server ran them');
    const listed = calls[0].output.chats;
    assert.ok(listed.length >= 1 && listed.length <= 5, JSON.stringify(calls[0].output));
    assert.ok(listed.some((c) => c.id === chatId), 'the chats of the user, this one first among them');
    assert.ok(calls[1].output.chats.some((c) => c.title === 'Quarterly plan'), JSON.stringify(calls[1].output));
    // The calls' step, then the answer's step after the results.
    assert.deepEqual(
      answer.parts.map((p) => p.type),
      ['step-start', 'dynamic-tool', 'dynamic-tool', 'step-start', 'text'],
    );
    const text = textOf(answer.parts);
    assert.match(text, /^Results: /);
    assert.match(text, /Quarterly plan/);
    assert.equal(answer.metadata?.status, 'complete');

    const messages = await stored(chatId);
    assert.equal(messages.length, 2);
    const saved = messages[1];
    assert.equal(saved.id, answer.id, 'the message id is the stored one');
    assert.equal(saved.metadata.status, 'complete');
    assert.deepEqual(asStored(answer.parts), saved.parts, 'live and stored answers are the same');
  });

  test(`a resume in the middle of a tool call assembles the whole answer (${name})`, async () => {
    const chatId = randomUUID();
    const transport = transportFor(sdk);
    const abort = new AbortController();
    const stream = await send(sdk, chatId, `Slowly [[fake ${TWO_CALLS} call_chunks=6 delay_ms=25]]`, abort.signal);
    // Read until the first call's arguments are arriving, then drop the connection like a reload.
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before the arguments arrived');
      if (value.type === 'tool-input-delta') break;
    }
    abort.abort();
    assert.equal((await stored(chatId))[1].metadata.status, 'streaming', 'dropped in the middle');

    const resumed = await transport.reconnectToStream({ chatId });
    assert.ok(resumed, 'the running answer is resumable');
    const answer = await assemble(sdk, resumed);

    const saved = (await stored(chatId))[1];
    assert.equal(saved.metadata.status, 'complete');
    assert.equal(saved.id, answer.id);
    assert.deepEqual(tools(saved.parts).map((c) => c.state), ['output-available', 'output-available']);
    assert.match(textOf(saved.parts), /^Results: /);
    assert.deepEqual(asStored(answer.parts), saved.parts, 'resumed and stored answers are the same');
  });

  test(`a write waits for approval, and once allowed the same message goes on (${name})`, async () => {
    const target = await createChat(`Old notes (${name})`);
    const chatId = randomUUID();
    const stream = await send(
      sdk,
      chatId,
      `Tidy up [[fake call=current_user call=delete_chat args={"chat_id":"${target.id}"}]]`,
    );

    // The first stream ends with the read done, the write's card and the request.
    const asked = await assemble(sdk, stream);

    assert.deepEqual(
      tools(asked.parts).map((c) => [c.toolName, c.state]),
      [
        ['current_user', 'output-available'],
        ['delete_chat', 'input-available'],
      ],
      JSON.stringify(asked.parts),
    );
    assert.deepEqual(tools(asked.parts)[0].output, { user: USER });
    const request = asked.parts.find((p) => p.type === 'data-approval');
    assert.equal(asked.parts.at(-1), request, 'the answer ends with the request');
    assert.equal(request.data.state, 'requested');
    assert.equal(request.data.toolName, 'delete_chat');
    assert.equal(request.data.source, 'records');
    assert.equal(request.data.toolCallId, tools(asked.parts)[1].toolCallId);
    assert.deepEqual(request.data.arguments, { chat_id: target.id });
    assert.ok(Date.parse(request.data.expiresAt) > Date.now(), request.data.expiresAt);
    assert.equal(textOf(asked.parts), '', 'the model has not gone on');
    const waiting = (await stored(chatId))[1];
    assert.equal(waiting.id, asked.id);
    assert.deepEqual(asStored(asked.parts), waiting.parts, 'the request as stored');
    assert.equal((await fetch(`${stack.url}/api/chats/${target.id}`, { headers })).status, 200, 'not deleted yet');

    // Allowed: the continuation streams through the same client code (the transport parses and, in the strict
    // versions, validates its chunks) and applies on top of the first message, as useChat does.
    const approvalUrl = `${stack.url}/api/chat/${chatId}/approvals/${encodeURIComponent(request.data.approvalId)}`;
    const continuation = await transportFor(sdk, {
      prepareSendMessagesRequest: () => ({ api: approvalUrl, headers, body: { approve: true } }),
    }).sendMessages({
      chatId,
      messages: [],
      trigger: 'submit-message',
      messageId: asked.id,
      abortSignal: new AbortController().signal,
    });
    const answer = await assemble(sdk, continuation, asked);

    assert.equal(answer.id, asked.id, 'the same message');
    assert.equal(answer.metadata?.status, 'complete');
    const calls = tools(answer.parts);
    assert.deepEqual(calls.map((c) => c.state), ['output-available', 'output-available']);
    assert.deepEqual(calls[1].output, { deleted: target.id });
    assert.equal(answer.parts.find((p) => p.type === 'data-approval').data.state, 'approved');
    assert.match(textOf(answer.parts), /^Results: /);
    const messages = await stored(chatId);
    assert.equal(messages.length, 2, 'no new message');
    assert.equal(messages[1].id, answer.id);
    assert.equal(messages[1].metadata.status, 'complete');
    assert.deepEqual(asStored(answer.parts), messages[1].parts, 'first stream + continuation = stored answer');
    assert.equal((await fetch(`${stack.url}/api/chats/${target.id}`, { headers })).status, 404, 'deleted');
  });
}
