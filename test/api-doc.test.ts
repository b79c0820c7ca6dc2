/**
 * docs/API.md's example is examples/api.ts, word for word (but for the package name in the
 * import): the build type-checks that file, and this runs it on the in-memory edges, without
 * root, and checks what it reports, so the page cannot drift from the API.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../examples/api.js';

const read = (path: string) => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), 'utf8');

test('docs/API.md shows examples/api.ts unchanged, importing from the package', () => {
  const page = read('docs/API.md');
  const blocks = [...page.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const example = read('examples/api.ts');
  assert.ok(example.includes("from '../src/index.js'"));
  assert.equal(blocks.at(-1), example.replace("from '../src/index.js'", "from 'ovpn-dco'"));
  for (const name of ['destroy(', 'Symbol.asyncDispose', 'OvpnError', 'newKey(', 'getPeer(id)', 'peer-del-ntf']) {
    assert.ok(page.includes(name), `API.md covers ${name}`);
  }
});

test('the example runs: a packet through, counted, an error with code and field, events, cleanup', async () => {
  const result = await main();
  assert.deepEqual(result.delivered, result.sent);
  assert.equal(result.vpnTxPackets, 1);
  assert.equal(result.linkTxBytes, result.sent.length + 24, 'DATA_V2 header, packet-id and tag around the packet');
  assert.equal(result.errorCode, 'EINVAL');
  assert.equal(result.errorField, 'remote-port');
  assert.deepEqual(result.events, [
    'tun0: peer 1 deleted (USERSPACE)',
    'tun0: peer 1 deleted (TEARDOWN)',
    'tun0: closed (disposed)',
    'tun0: closed (disposed)',
  ]);
});
