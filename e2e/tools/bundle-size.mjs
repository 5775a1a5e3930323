// Prints the initial load of the web app as served (compressed bytes on the wire), as a markdown table.
// Usage: node tools/bundle-size.mjs   (after scripts/build-web.sh and cargo build -p server -p fake-databricks)
import { startStack } from '../support/stack.mjs';
import { measureInitialLoad } from '../support/initial-load.mjs';

const stack = await startStack();
try {
  const { rows, total } = await measureInitialLoad(stack.url);
  console.log('| file | encoding | bytes on the wire |');
  console.log('|---|---|---|');
  for (const row of rows) console.log(`| ${row.name} | ${row.encoding} | ${row.bytes} |`);
  console.log(`| **total** | | **${total}** (${(total / 1024).toFixed(1)} KiB) |`);
} finally {
  await stack.stop();
}
