/**
 * Tests for the native edge (src/edge). Everything that needs a TUN device or
 * addresses runs for real in a throw-away network namespace: each case spawns
 * `unshare --net node dist/test/helpers/edge-netns.js <scenario>` and asserts
 * on the bytes and counts it reports. The namespace dies with the child, so
 * nothing leaks onto the host even if a scenario fails halfway.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  copyEndpoint,
  ENDPOINT_SIZE,
  newEndpoints,
  readEndpoint,
  sameRemote,
  writeEndpoint,
} from '../src/core/endpoint.js';
import { scenarioInPrivateNetns } from './helpers/private-netns.js';

const HELPER = fileURLToPath(new URL('./helpers/edge-netns.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const NOT_ROOT = 'needs root to create network namespaces and TUN devices';

/** Run a scenario in a fresh network namespace; resolves with its RESULT object. */
const inNetns = (scenario: string): Promise<any> => scenarioInPrivateNetns(HELPER, scenario);

test('endpoint slots: layout, round trip, equality', () => {
  const eps = newEndpoints(4);
  assert.equal(eps.length, 4 * ENDPOINT_SIZE);
  writeEndpoint(eps, 0, { address: '192.0.2.7', port: 1194, local: '198.51.100.1', ifindex: 3 });
  const s0 = eps.subarray(0, 48);
  assert.equal(s0[0], 4);
  assert.equal(s0.readUInt16BE(2), 1194);
  assert.deepEqual([...s0.subarray(4, 8)], [192, 0, 2, 7]);
  assert.equal(s0[20], 4);
  assert.deepEqual([...s0.subarray(24, 28)], [198, 51, 100, 1]);
  assert.equal(s0.readUInt32LE(40), 3);
  assert.deepEqual(readEndpoint(eps, 0), {
    address: '192.0.2.7',
    port: 1194,
    family: 4,
    local: '198.51.100.1',
    ifindex: 3,
  });

  writeEndpoint(eps, 1, { address: '2001:db8:0:0:1:0:0:1', port: 65535 });
  const s1 = eps.subarray(48, 96);
  assert.equal(s1[0], 6);
  assert.equal(s1.subarray(4, 20).toString('hex'), '20010db8000000000001000000000001');
  assert.equal(s1[20], 0, 'no local address: kernel chooses');
  assert.deepEqual(readEndpoint(eps, 1), { address: '2001:db8::1:0:0:1', port: 65535, family: 6, ifindex: 0 });

  // v4-mapped is the same peer as plain v4, as the native side reports it
  writeEndpoint(eps, 2, { address: '::ffff:192.0.2.7', port: 1194 });
  assert.equal(eps[96], 4);
  assert.ok(sameRemote(eps, 0, eps, 2), 'local part is ignored');
  writeEndpoint(eps, 3, { address: '192.0.2.7', port: 1195 });
  assert.ok(!sameRemote(eps, 0, eps, 3), 'port differs');
  writeEndpoint(eps, 3, { address: '192.0.2.8', port: 1194 });
  assert.ok(!sameRemote(eps, 0, eps, 3), 'address differs');
  assert.ok(!sameRemote(eps, 0, eps, 1), 'family differs');
  copyEndpoint(eps, 3, eps, 1);
  assert.ok(sameRemote(eps, 1, eps, 3));

  for (const a of ['::', '::1', 'fe80::1', '2001:db8::', '1:2:3:4:5:6:7:8', '2001:db8:0:1:1:1:1:1']) {
    writeEndpoint(eps, 0, { address: a, port: 1 });
    assert.equal(readEndpoint(eps, 0).address, a);
  }
  assert.throws(() => writeEndpoint(eps, 0, { address: 'not-an-ip', port: 1 }), TypeError);
  assert.throws(() => writeEndpoint(eps, 0, { address: '::1', port: 70000 }), RangeError);
  assert.throws(() => writeEndpoint(eps, 4, { address: '::1', port: 1 }), RangeError);
});

test('tun: packets from the stack read in batches, packets written reach sockets', {
  skip: !isRoot && NOT_ROOT,
}, async () => {
  const r = await inNetns('tun');
  assert.equal(r.name, 'ovt0');
  assert.equal(r.link.mtu, 1400);
  assert.equal(r.link.up, true);

  const ip = Buffer.from(r.sent, 'hex');
  assert.equal(ip[0]! >> 4, 4, 'IPv4, and no packet-info prefix (IFF_NO_PI)');
  assert.equal(ip[0]! & 0xf, 5);
  assert.equal(ip.readUInt16BE(2), ip.length, 'total length = bytes read');
  assert.equal(ip[9], 17, 'UDP');
  assert.deepEqual([...ip.subarray(12, 16)], [10, 99, 0, 1]);
  assert.deepEqual([...ip.subarray(16, 20)], [10, 99, 0, 2]);
  assert.equal(ip.readUInt16BE(22), 9999);
  assert.equal(ip.subarray(28).toString(), 'hello-tun');

  assert.equal(r.burstPayloads.length, 50);
  assert.deepEqual(
    r.burstPayloads,
    Array.from({ length: 50 }, (_, i) => `burst-${i}`),
  );
  assert.ok(r.burstCounts[0] > 1, `first readBatch returned ${r.burstCounts[0]} packets; expected several at once`);

  assert.equal(r.written, 2, 'both packets consumed');
  assert.equal(r.writeSizes[0], -22, 'non-IP packet dropped with -EINVAL in sizes[]');
  assert.equal(r.writeSizes[1], 36);
  assert.equal(Buffer.from(r.received, 'hex').toString(), 'from-tun');
  assert.deepEqual(r.rinfo, { address: '10.99.0.2', port: 5555 });
});

test('udp: sendmmsg/recvmmsg batches, pktinfo, dual-stack, sticky source', { skip: !isRoot && NOT_ROOT }, async () => {
  const r = await inNetns('udp');
  const msgs = Array.from({ length: 100 }, (_, i) => `pkt-${i}-${'x'.repeat(i)}`);

  for (const [fam, addr] of [
    ['v4', '127.0.0.1'],
    ['v6', '::1'],
  ] as const) {
    const x = r[fam];
    assert.equal(x.sent, 100, `${fam}: one sendmmsg call sent all`);
    assert.deepEqual(x.payloads, msgs, `${fam}: bytes intact and in order`);
    assert.deepEqual(
      x.sizes,
      msgs.map((m) => m.length),
    );
    assert.equal(
      x.counts.reduce((a: number, b: number) => a + b, 0),
      100,
    );
    for (const ep of x.endpoints) {
      assert.deepEqual(ep, { address: addr, port: x.aPort, family: fam === 'v4' ? 4 : 6, local: addr, ifindex: 1 });
    }
    const raw = Buffer.from(x.raw[0].data);
    assert.equal(raw[0], fam === 'v4' ? 4 : 6);
    assert.equal(raw.readUInt16BE(2), x.aPort);
  }
  assert.ok(r.v4.counts[0] > 1, 'several datagrams per recvmmsg');

  const d = r.dual;
  assert.equal(d.sentToDual, 1);
  assert.deepEqual(d.atDual.payloads, ['to-dual']);
  assert.deepEqual(
    d.atDual.endpoints[0],
    { address: '127.0.0.1', port: d.aPort, family: 4, local: '127.0.0.1', ifindex: 1 },
    'v4-mapped reported as v4',
  );
  assert.equal(d.replied, 1);
  assert.deepEqual(d.atA.payloads, ['reply-from-dual']);
  assert.deepEqual(d.atA.endpoints[0], {
    address: '127.0.0.1',
    port: d.dPort,
    family: 4,
    local: '127.0.0.1',
    ifindex: 1,
  });
  assert.equal(d.dualToV6, 1);
  assert.deepEqual(d.atB6.endpoints[0], { address: '::1', port: d.dPort, family: 6, local: '::1', ifindex: 1 });

  const s = r.sticky;
  assert.equal(s.sent, 3);
  assert.deepEqual(s.payloads, ['pin-127.0.0.2', 'no-pin', 'pin-gone']);
  assert.equal(s.endpoints[0].address, '127.0.0.2', 'pinned source honoured');
  assert.equal(s.endpoints[1].address, '127.0.0.1', 'kernel-chosen source');
  assert.equal(s.endpoints[2].address, '127.0.0.1', 'vanished source: resent unpinned');
  for (const ep of s.endpoints) assert.equal(ep.port, s.wPort);
  assert.equal(s.afterSend[0].local, '127.0.0.2', 'working pin kept');
  assert.equal(s.afterSend[2].local, undefined, "dead pin cleared in the caller's slot");

  const s6 = r.sticky6;
  assert.equal(s6.sent, 2);
  assert.deepEqual(s6.payloads, ['pin6-::1', 'pin6-gone']);
  assert.equal(s6.afterSend[0].local, '::1');
  assert.equal(s6.afterSend[1].local, undefined);

  assert.deepEqual(r.trunc.sizes, [-1], 'truncated datagram flagged, not delivered short');
});

test('udp: GSO groups runs per endpoint and size, GRO splits, refused sizes fall back', {
  skip: !isRoot && NOT_ROOT,
}, async () => {
  const r = await inNetns('gso');
  assert.deepEqual(r.opened, { aGso: true, aGro: true, bGro: false }, 'kernel has UDP_SEGMENT and UDP_GRO');

  const m = r.mixed;
  assert.equal(m.sent, m.total, 'every packet consumed');
  assert.ok(m.bOk, 'b got its packets intact and in order');
  assert.ok(m.cOk, 'c got its packets intact and in order');
  assert.equal(m.bFrom.length, 1);
  // b0-9 | c0-4 | b-mid0-2 + b-short | b-after0-1 | b-one + b-many0 (shorter, ends it) | b-many 64 | 5
  assert.equal(m.info.gsoSends, 7, 'seven multi-packet messages');
  assert.equal(m.info.gsoFallbacks, 0);

  const u = r.unreach;
  assert.equal(u.sent, 5);
  assert.deepEqual(u.sizes.slice(1, 4), [-101, -101, -101], 'the unreachable group marked -ENETUNREACH per packet');
  assert.ok(u.sizes[0] > 0 && u.sizes[4] > 0);
  assert.deepEqual(u.got, ['u0', 'u4']);

  const p = r.pinned;
  assert.equal(p.sent, 3);
  assert.ok(p.ok, 'pinned run with a vanished source delivered');
  assert.deepEqual(p.afterPinned, [null, null, null], 'dead pin cleared in every slot of the run');
  assert.equal(p.info.gsoRefusedSize, 0, 'a vanished source does not count against GSO');
  assert.ok(p.info.gso);

  const g = r.gro;
  assert.equal(g.sent, 41);
  assert.ok(g.ok, 'split back into the original datagrams, in order');
  assert.deepEqual(g.counts, [16, 16, 9], 'a full batch, the rest handed out by the next calls');
  assert.deepEqual(g.sizes, [...Array(40).fill(1200), 100], 'segment size, last one shorter');
  assert.deepEqual(g.from, [`127.0.0.1:${g.aPort}`], "every segment carries the sender's endpoint");
  assert.equal(g.info.groDatagrams, 1, 'arrived as one coalesced datagram');
  assert.equal(g.info.groSegments, 41);

  const f = r.fallback;
  assert.deepEqual(f.sent, [10, 10, 10]);
  assert.ok(f.ok, 'refused groups still delivered, one datagram each');
  assert.equal(f.afterBig.gsoFallbacks, 1, 'kernel refused the 1400-byte segments once');
  assert.equal(f.afterBig.gsoRefusedSize, 1400);
  assert.equal(f.end.gsoFallbacks, 1, 'not tried again at that size');
  assert.ok(f.end.gso, 'GSO stays on for smaller packets');
  assert.equal(f.end.gsoSends, f.afterBig.gsoSends + 1, 'the 1000-byte run went as one message');

  assert.deepEqual(r.off.opened, { gso: false, gro: false });
  assert.equal(r.off.sent, 10);
  assert.equal(r.off.info.gsoSends, 0);
});

test('tun: `ip link del` under an open fd reports EBADFD', { skip: !isRoot && NOT_ROOT }, async () => {
  const r = await inNetns('linkdel');
  assert.ok(r.status < 0, `poller fired with an error status (got ${r.status})`);
  assert.equal(r.status, -9, 'libuv UV_EBADF from EPOLLERR');
  assert.equal(r.readCode, 'EBADFD');
  assert.equal(r.readErrno, -77);
  assert.match(r.readMessage, /readBatch: read/);
  assert.equal(r.writeCode, 'EBADFD');
  assert.equal(r.exists, false);
});

test("tun: lifetime is the fd's — close, EBUSY, SIGKILL", { skip: !isRoot && NOT_ROOT }, async () => {
  const r = await inNetns('close');
  assert.equal(r.busy, 'EBUSY', 'second open of a live name');
  assert.notEqual(r.before, null);
  assert.equal(r.after, null, 'interface gone once the fd is closed');
  assert.equal(r.secondClose, 'no error', 'close() is idempotent');
  assert.equal(r.readAfterClose, 'EBADF');
  assert.equal(r.reopenedName, 'ovt0');
  assert.equal(r.holderSaid, 'holding ovt1');
  assert.equal(r.busyWhileHeld, 'EBUSY');
  assert.notEqual(r.heldLink, null);
  assert.equal(r.signal, 'SIGKILL');
  assert.equal(r.afterKill, null, 'SIGKILLed holder leaves no interface behind');
  assert.equal(r.recreatedName, 'ovt1');
});

test('UDP GSO: a group pinned to a source address that vanished is sent again as separate datagrams, unpinned', {
  skip: !isRoot && NOT_ROOT,
}, async () => {
  const r = await inNetns('vanished-source');
  assert.deepEqual(r.before, {
    sent: 4,
    sizes: [100, 100, 100, 100],
    from: ['10.9.9.9', '10.9.9.9', '10.9.9.9', '10.9.9.9'],
  });
  assert.deepEqual(r.after, { sent: 4, sizes: [100, 100, 100, 100], payloads: ['a', 'b', 'c', 'd'], unpinned: true });
});
