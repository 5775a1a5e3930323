// The Vercel AI SDK's own client code (DefaultChatTransport, TextStreamChatTransport, readUIMessageStream)
// against the real server: any `useChat` front end must work unchanged. Runs against every pinned SDK version:
// two that validate stream chunks strictly (ai 5.0.60, ai 6.0.100), the latest v6 and v7.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as latest from 'ai';
import * as v5 from 'ai-v5-strict';
import * as v6 from 'ai-v6-strict';
import * as v7 from 'ai-v7';
import { startStack, numberedText } from '../support/stack.mjs';

const USER = 'sdk-user@example.com';
let stack;

before(async () => {
  // Titles on, as by default: a new chat's title comes from the same model while the answer streams.
  stack = await startStack({ env: { TITLE_GENERATION: 'true' } });
});

after(async () => {
  await stack?.stop();
});

/** Sends messages through a transport and assembles the assistant message the way `useChat` does. */
async function send(sdk, transport, chatId, messages, trigger = 'submit-message') {
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger,
    messageId: undefined,
    abortSignal: new AbortController().signal,
  });
  let last;
  let streamError;
  for await (const message of sdk.readUIMessageStream({ stream, onError: (e) => { streamError = e; } })) {
    last = message;
  }
  if (streamError) throw streamError;
  return last;
}

function textOf(message) {
  return message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
}

function userMessage(text) {
  return { id: randomUUID(), role: 'user', parts: [{ type: 'text', text }] };
}

for (const [name, sdk] of Object.entries({
  'ai@5.0.60 (strict)': v5,
  'ai@6.0.100 (strict)': v6,
  'ai@6 latest': latest,
  'ai@7': v7,
})) {
  test(`DefaultChatTransport assembles streamed answers (${name})`, async () => {
    const transport = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers: { 'x-forwarded-email': USER } });
    const chatId = randomUUID();
    const first = userMessage('First [[fake tokens=25 reasoning=4]]');

    const answer = await send(sdk, transport, chatId, [first]);

    assert.equal(answer.role, 'assistant');
    assert.equal(textOf(answer), numberedText(25));
    const reasoning = answer.parts.find((p) => p.type === 'reasoning');
    assert.equal(reasoning?.text, 'r1 r2 r3 r4');
    assert.match(answer.id, /^[0-9a-f-]{36}$/, 'the message id is the stored message id');
    assert.equal(answer.metadata?.status, 'complete');

    // A second turn in the same chat, sending the whole history as useChat does.
    const second = userMessage('Second question');
    const next = await send(sdk, transport, chatId, [first, answer, second]);
    assert.equal(textOf(next), 'You said: Second question');

    // The stored history loads back as UI messages with the same ids.
    const history = await (await fetch(`${stack.url}/api/chats/${chatId}/messages`, { headers: { 'x-forwarded-email': USER } })).json();
    assert.deepEqual(history.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
    assert.equal(history.messages[1].id, answer.id);
    assert.equal(history.messages[3].id, next.id);

    // Regenerate adds a version of the last answer (the first stays as a branch).
    const again = await send(sdk, transport, chatId, [first, answer, second], 'regenerate-message');
    assert.equal(textOf(again), 'You said: Second question');
    assert.notEqual(again.id, next.id);
  });

  test(`a title arriving mid-answer leaves the assembled answer whole, live and stored (${name})`, async () => {
    const headers = { 'x-forwarded-email': USER };
    const transport = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers });
    const chatId = randomUUID();
    const stream = await transport.sendMessages({
      chatId,
      messages: [userMessage('Count [[fake tokens=80 delay_ms=10]]')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: new AbortController().signal,
    });
    // Tee the chunks: one copy is assembled as useChat does, the other shows where the title came.
    const [forMessage, forChunks] = stream.tee();
    const chunks = [];
    const collecting = (async () => {
      for await (const chunk of forChunks) chunks.push(chunk);
    })();
    let last;
    for await (const message of sdk.readUIMessageStream({ stream: forMessage })) last = message;
    await collecting;

    const titleAt = chunks.findLastIndex((c) => c.type === 'data-chat');
    assert.ok(chunks.slice(0, titleAt).some((c) => c.type === 'text-delta'), 'text came before the title');
    assert.ok(chunks.slice(titleAt).some((c) => c.type === 'text-delta'), 'and after it');
    assert.equal(textOf(last), numberedText(80));

    // The stored answer is the same text (the resume test covers a title arriving after a reconnect).
    const history = await (await fetch(`${stack.url}/api/chats/${chatId}/messages`, { headers })).json();
    assert.equal(textOf(history.messages[1]), numberedText(80));
    const chat = await (await fetch(`${stack.url}/api/chats/${chatId}`, { headers })).json();
    assert.match(chat.title, /^w1 w2/, 'the model wrote the title');
  });

  test(`resume on a chat that does not exist yet, or is another user's, finds nothing to resume (${name})`, async () => {
    // useChat({ id, resume: true }) calls reconnectToStream on mount, also for a brand-new chat id: it must start
    // cleanly (null), not in an error state; another user's chat must look exactly the same.
    const transport = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers: { 'x-forwarded-email': USER } });
    assert.equal(await transport.reconnectToStream({ chatId: randomUUID() }), null);
    const othersChat = randomUUID();
    const other = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers: { 'x-forwarded-email': 'other@example.com' } });
    await send(sdk, other, othersChat, [userMessage('[[fake tokens=3]]')]);
    assert.equal(await transport.reconnectToStream({ chatId: othersChat }), null);
  });

  test(`DefaultChatTransport surfaces a model error as a stream error (${name})`, async () => {
    const transport = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers: { 'x-forwarded-email': USER } });
    await assert.rejects(
      send(sdk, transport, randomUUID(), [userMessage('[[fake tokens=10 fail_after=3]]')]),
      /fake failure mid-stream/,
    );
  });

  test(`TextStreamChatTransport streams plain text (${name})`, async () => {
    // The transport sends the same request as DefaultChatTransport; `Accept: text/plain` selects the text stream.
    const transport = new sdk.TextStreamChatTransport({
      api: `${stack.url}/api/chat`,
      headers: { 'x-forwarded-email': USER, accept: 'text/plain' },
    });

    const answer = await send(sdk, transport, randomUUID(), [userMessage('Plain [[fake tokens=15 reasoning=2]]')]);

    assert.equal(textOf(answer), numberedText(15));
  });

  test(`resuming with the transport replays the running answer without duplicates (${name})`, async () => {
    const headers = { 'x-forwarded-email': USER };
    const transport = new sdk.DefaultChatTransport({ api: `${stack.url}/api/chat`, headers });
    const chatId = randomUUID();
    const abort = new AbortController();
    const stream = await transport.sendMessages({
      chatId,
      messages: [userMessage('[[fake tokens=60 delay_ms=15]]')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: abort.signal,
    });
    // Read a little, then drop the connection like a page reload does.
    const reader = stream.getReader();
    for (let i = 0; i < 12; i++) await reader.read();
    abort.abort();

    const resumed = await transport.reconnectToStream({ chatId });
    assert.ok(resumed, 'a running answer is resumable');
    let last;
    for await (const message of sdk.readUIMessageStream({ stream: resumed })) last = message;

    assert.equal(textOf(last), numberedText(60));
    const none = await transport.reconnectToStream({ chatId });
    assert.equal(none, null, 'nothing runs any more: 204');
  });
}
