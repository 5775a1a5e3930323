// Starts the real stack for a test: a fresh PostgreSQL database, the fake model server and the chat server
// (the binaries cargo built), and stops them afterwards.
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const serverBin = process.env.SERVER_BIN ?? path.join(root, 'target', 'debug', 'server');
const fakeBin = process.env.FAKE_BIN ?? path.join(root, 'target', 'debug', 'fake-databricks');
const adminUrl = process.env.TEST_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function psql(sql) {
  execFileSync('psql', [adminUrl, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function waitFor(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the chat server on `databaseUrl`; resolves with its base URL once it listens. */
export function startServer(databaseUrl, env = {}) {
  const child = spawn(serverBin, [], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_FORMAT: 'json',
      LOG_LEVEL: process.env.SERVER_LOG_LEVEL ?? 'warn,server::startup=info',
      // The tests script the fake model; the in-process model is tested on its own (local-model.test.mjs).
      LOCAL_MODEL: 'off',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`the server exited early with code ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (process.env.SERVER_LOGS) process.stderr.write(`${line}\n`);
      try {
        const event = JSON.parse(line);
        if (event.address) {
          clearTimeout(timer);
          resolve({ url: `http://${event.address}`, process: child });
        }
      } catch {
        // not a log line
      }
    });
  });
}

/**
 * Starts everything. Options: `env` (extra server variables; `{fakeUrl}` in a value is replaced), `tokenDelayMs` (fake model pace), `fakeArgs` (extra
 * fake-databricks arguments: credentials and endpoints, see crates/fake-databricks/src/main.rs).
 * Returns { url, fakeUrl, databaseUrl, stop() }.
 */
export async function startStack({ env = {}, tokenDelayMs = 10, fakeArgs = [] } = {}) {
  const database = `chat_e2e_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  psql(`create database ${database}`);
  const databaseUrl = adminUrl.replace(/\/[^/]*$/, `/${database}`);
  const fakePort = await freePort();
  const fake = spawn(fakeBin, ['--port', String(fakePort), '--token-delay-ms', String(tokenDelayMs), ...fakeArgs], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const fakeUrl = `http://127.0.0.1:${fakePort}`;
  await waitFor(async () => (await fetch(`${fakeUrl}/__fake/requests`)).ok, 'the fake model server');
  const server = await startServer(databaseUrl, {
    LLM_BASE_URL: `${fakeUrl}/serving-endpoints`,
    DATABRICKS_SERVING_ENDPOINT: 'fake-model',
    TITLE_GENERATION: 'false',
    TRUST_FORWARDED_HEADERS: 'true',
    WEB_DIST_DIR: path.join(root, 'dist'),
    // `{fakeUrl}` in a value stands for the fake's address, known only now.
    ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replaceAll('{fakeUrl}', fakeUrl)])),
  });
  return {
    url: server.url,
    fakeUrl,
    databaseUrl,
    server: server.process,
    async stop() {
      for (const child of [server.process, fake]) {
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
        }
      }
      psql(`drop database if exists ${database} with (force)`);
    },
  };
}

/** Queues scripted answers on the fake (see crates/fake-databricks/src/scenario.rs). */
export async function pushScenarios(fakeUrl, scenarios) {
  const response = await fetch(`${fakeUrl}/__fake/scenarios`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(scenarios),
  });
  if (!response.ok) throw new Error(`queueing scenarios failed: ${response.status}`);
}

/** `w1 w2 ... wN`, the fake's answer to `[[fake tokens=N]]`. */
export function numberedText(n) {
  return Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ');
}
