// Measures the initial load of the web app as served: index.html and the assets it references, fetched the way
// a browser does (Accept-Encoding: br, gzip), counting the bytes on the wire. Usage: node tools/bundle-size.mjs
import http from 'node:http';
import { startStack } from '../support/stack.mjs';

function fetchRaw(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'accept-encoding': 'br, gzip', 'x-forwarded-email': 'size@example.com' } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

const stack = await startStack();
try {
  const index = await fetchRaw(`${stack.url}/`);
  const html = (await new Promise((resolve) => {
    http.get(`${stack.url}/`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
  }));
  const assets = [...new Set([...html.matchAll(/(?:href|src)="(\/[^"]+\.(?:js|wasm|css))"/g)].map((m) => m[1]))];
  const rows = [['index.html', index]];
  for (const asset of assets) rows.push([asset, await fetchRaw(`${stack.url}${asset}`)]);
  let total = 0;
  console.log('| file | encoding | bytes on the wire |');
  console.log('|---|---|---|');
  for (const [name, res] of rows) {
    if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
    total += res.bytes.length;
    console.log(`| ${name.replace(/-[0-9a-f]{16}/, '-<hash>')} | ${res.headers['content-encoding'] ?? 'identity'} | ${res.bytes.length} |`);
  }
  console.log(`| **total** | | **${total}** (${(total / 1024).toFixed(1)} KiB) |`);
} finally {
  await stack.stop();
}
