/**
 * The native shim under hostile or careless hands (issue 13, findings 10 and 12): an admin's
 * `ip link set down` or a vanished link-local path costs packets, counted, never an exception
 * out of a poll callback; a TUN read cut short is dropped; a GSO header with ECN alone is
 * refused; and a getter on the batch array cannot make the shim use a Buffer it already let go.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HEADROOM, newBatch } from '../src/core/batch.js';
import { newEndpoints, writeEndpoint } from '../src/core/endpoint.js';
import { GSO_ECN, segmentCount, VNET_HDR_LEN } from '../src/core/gso.js';
import { UdpBind } from '../src/edge/udp.js';
import { scenarioInPrivateNetns } from './helpers/private-netns.js';
import { missing } from './helpers/tools.js';

const HELPER = fileURLToPath(new URL('./helpers/hostile-native-ns.js', import.meta.url));
const skip = missing(['ip', 'unshare']);
const EIO = 5;

test('gso: a virtio_net_hdr with gso_type ECN alone is refused, not cut by fields never checked', () => {
  const buf = Buffer.alloc(VNET_HDR_LEN + 100);
  buf[VNET_HDR_LEN] = 0x45;
  buf[1] = GSO_ECN;
  buf.writeUInt16LE(40, 4); // a gso_size and csum_start that would cut the stale bytes into segments
  buf.writeUInt16LE(20, 6);
  assert.equal(segmentCount(buf, 0, buf.length), 0);
  buf[1] = 0;
  assert.equal(segmentCount(buf, 0, buf.length), 1, 'no GSO: one packet');
});

test('shim: ip link set down under the TUN, then a write: each packet refused with -EIO, nothing thrown', {
  skip,
}, async () => {
  const r = await scenarioInPrivateNetns(HELPER, 'tun-down-write');
  assert.deepEqual(r, { returned: 3, sizes: [-EIO, -EIO, -EIO] });
});

test('shim: a TUN read into a slot smaller than the packet is dropped (-1), not cut silently', { skip }, async () => {
  const r = await scenarioInPrivateNetns(HELPER, 'tun-small-slot');
  assert.ok(r.sizes.includes(-1), `sizes read: ${r.sizes}`);
  assert.ok(!r.sizes.includes(64), 'no read handed on as a full slot');
});

test('shim: a link-local path whose interface is removed costs the packet (sizes < 0), not an exception', {
  skip,
}, async () => {
  const r = await scenarioInPrivateNetns(HELPER, 'link-local-gone');
  assert.deepEqual(r.before, { returned: 1 });
  assert.equal(r.after.threw, undefined, `sendmmsg threw: ${r.after.threw}`);
  assert.equal(r.after.returned, 1);
  assert.ok(r.size < 0, `sizes[0] = ${r.size}`);
});

test('shim: a getter on the batch array that detaches an earlier Buffer is caught before sendmmsg', (t) => {
  const bind = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  t.after(() => bind.close());
  const batch = newBatch(2, 2048);
  const eps = newEndpoints(2);
  // Buffers of their own ArrayBuffer, so that the getter can transfer (detach) the first one.
  const first = Buffer.from(new ArrayBuffer(2048));
  const second = Buffer.from(new ArrayBuffer(2048));
  const bufs: Buffer[] = [first];
  Object.defineProperty(bufs, 1, {
    enumerable: true,
    get() {
      structuredClone(first.buffer, { transfer: [first.buffer] });
      return second;
    },
  });
  for (let i = 0; i < 2; i++) {
    batch.offsets[i] = HEADROOM;
    batch.sizes[i] = 100;
    writeEndpoint(eps, i, { address: '127.0.0.1', port: bind.port });
  }
  batch.count = 2;
  assert.throws(() => bind.send({ ...batch, bufs }, eps), /outside buffer|must be a Buffer/);
});
