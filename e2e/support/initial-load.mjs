// The web app's initial load as served: index.html and the assets it references, fetched the way a browser does
// (Accept-Encoding: br, gzip), counting the bytes on the wire.
import http from 'node:http';

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

function fetchText(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Fetches what the browser loads before the app runs; returns { rows: [{ name, encoding, bytes }], total }. */
export async function measureInitialLoad(baseUrl) {
  const html = await fetchText(`${baseUrl}/`);
  const assets = [...new Set([...html.matchAll(/(?:href|src)="(\/[^"]+\.(?:js|wasm|css))"/g)].map((m) => m[1]))];
  const rows = [];
  for (const [name, path] of [['index.html', '/'], ...assets.map((a) => [a, a])]) {
    const res = await fetchRaw(`${baseUrl}${path}`);
    if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
    rows.push({
      name: name.replace(/-[0-9a-f]{16}/, '-<hash>'),
      encoding: res.headers['content-encoding'] ?? 'identity',
      bytes: res.bytes.length,
    });
  }
  return { rows, total: rows.reduce((sum, row) => sum + row.bytes, 0) };
}
