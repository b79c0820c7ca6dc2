/**
 * Multi-peer routing, pure parts: VPN address parsing and checks (src/peer/vpn-address.ts) and
 * the transmit-side router (src/peer/peer-router.ts), including a fast-check comparison with a
 * naive longest-prefix-match reference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatIp, parseIp } from '../src/core/ip.js';
import { hash6, PeerRouter, type SystemRoute } from '../src/peer/peer-router.js';
import { vpnAddressProblem } from '../src/peer/vpn-address.js';

const ip = (text: string): Uint8Array => {
  const parsed = parseIp(text);
  assert.ok(parsed, `test address ${text} must parse`);
  return parsed.bytes;
};

/** A minimal IP packet to `dst` (only the fields route() reads are meaningful). */
function packetTo(dst: string, offset = 0): Buffer {
  const bytes = ip(dst);
  const v4 = bytes.length === 4;
  const p = Buffer.alloc(offset + (v4 ? 20 : 40));
  p[offset] = v4 ? 0x45 : 0x60;
  p.set(bytes, offset + (v4 ? 16 : 24));
  return p;
}

function routeOf<P>(router: PeerRouter<P>, dst: string): P | null {
  const p = packetTo(dst);
  return router.route(p, 0, p.length);
}

const sys = (prefix: string, gateway: string | null = null): SystemRoute => {
  const [address, len] = prefix.split('/') as [string, string | undefined];
  const dst = ip(address);
  return {
    family: dst.length === 4 ? 4 : 6,
    dst,
    prefixLen: len === undefined ? dst.length * 8 : Number(len),
    gateway: gateway === null ? null : ip(gateway),
  };
};

// ---- vpn-address ----------------------------------------------------------------------------------

test('parseIp: exact bytes for IPv4 and every IPv6 spelling; null for anything else', () => {
  assert.deepEqual(parseIp('10.0.0.1'), { family: 4, bytes: Uint8Array.from([10, 0, 0, 1]) });
  assert.deepEqual(parseIp('255.255.255.255')?.bytes, Uint8Array.from([255, 255, 255, 255]));
  const hex = (a: string) => Buffer.from(parseIp(a)!.bytes).toString('hex');
  assert.equal(hex('::'), '00000000000000000000000000000000');
  assert.equal(hex('::1'), '00000000000000000000000000000001');
  assert.equal(hex('fd00::'), 'fd000000000000000000000000000000');
  assert.equal(hex('2001:db8::1:0:0:1'), '20010db8000000000001000000000001');
  assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  assert.equal(hex('::ffff:192.0.2.7'), '00000000000000000000ffffc0000207');
  assert.equal(hex('64:ff9b::10.1.2.3'), '0064ff9b00000000000000000a010203');
  assert.equal(parseIp('::ffff:192.0.2.7')?.family, 6, 'a mapped address stays IPv6 here: the caller decides');
  for (const bad of [
    '',
    'x',
    '10.0.0',
    '10.0.0.256',
    '010.0.0.1',
    ' 10.0.0.1',
    '[::1]',
    'fe80::1%eth0',
    '1::2::3',
    '10.0.0.0/8',
  ]) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test('formatIp: dotted IPv4, RFC 5952 IPv6, and round trips through parseIp', () => {
  assert.equal(formatIp(Uint8Array.from([192, 0, 2, 7])), '192.0.2.7');
  assert.equal(formatIp(ip('2001:0db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'first of equal zero runs');
  assert.equal(formatIp(ip('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
  assert.equal(formatIp(ip('1:0:0:2:0:0:0:3')), '1:0:0:2::3', 'longest run wins');
  assert.equal(formatIp(new Uint8Array(16)), '::');
  assert.equal(formatIp(ip('fd00::')), 'fd00::');
  assert.throws(() => formatIp(new Uint8Array(5)), {
    name: 'RangeError',
    message: 'an IP address has 4 or 16 bytes, got 5',
  });
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      assert.deepEqual(parseIp(formatIp(bytes))?.bytes, bytes);
    }),
  );
});

test('vpnAddressProblem: refuses unspecified, loopback, multicast, broadcast, mapped and compatible; accepts unicast', () => {
  const cases: [string, 4 | 6, string | null][] = [
    ['0.0.0.0', 4, 'is the unspecified address'],
    ['0.1.2.3', 4, 'is in 0.0.0.0/8, which only a host without an address uses as its source'],
    ['127.0.0.1', 4, 'is a loopback address'],
    ['127.255.0.9', 4, 'is a loopback address'],
    ['224.0.0.1', 4, 'is a multicast address'],
    ['239.255.255.255', 4, 'is a multicast address'],
    ['255.255.255.255', 4, 'is the broadcast address'],
    ['10.8.0.2', 4, null],
    ['1.0.0.0', 4, null],
    ['126.255.255.255', 4, null],
    ['128.0.0.0', 4, null],
    ['223.255.255.255', 4, null],
    ['240.0.0.1', 4, null],
    ['169.254.0.1', 4, null],
    ['::', 6, 'is the unspecified address'],
    ['::1', 6, 'is a loopback address'],
    ['ff02::1', 6, 'is a multicast address'],
    ['ff00::', 6, 'is a multicast address'],
    ['::ffff:10.0.0.1', 6, 'is an IPv4-mapped IPv6 address'],
    ['::ffff:0:0', 6, 'is an IPv4-mapped IPv6 address'],
    ['::10.0.0.1', 6, 'is an IPv4-compatible IPv6 address'],
    ['::2', 6, 'is an IPv4-compatible IPv6 address'],
    ['fd00::2', 6, null],
    ['fe80::1', 6, null],
    ['feff::1', 6, null],
    ['::1:0:0:1', 6, null],
    ['::fffe:a00:1', 6, null],
    ['2001:db8::1', 6, null],
    ['::1', 4, 'is not an IPv4 address'],
    ['10.0.0.1', 6, 'is not an IPv6 address'],
    ['10.0.0.300', 4, 'is not an IPv4 address'],
    ['fe80::1%tun0', 6, 'is not an IPv6 address'],
  ];
  for (const [address, family, want] of cases)
    assert.equal(vpnAddressProblem(address, family), want, `${address} (IPv${family})`);
});

// ---- PeerRouter -----------------------------------------------------------------------------------

test('route: exact VPN address match, IPv4 and IPv6, at any offset; misses are null', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), ip('fd00::2'));
  r.setVpnAddresses('b', ip('10.8.0.3'), null);
  assert.equal(routeOf(r, '10.8.0.2'), 'a');
  assert.equal(routeOf(r, '10.8.0.3'), 'b');
  assert.equal(routeOf(r, 'fd00::2'), 'a');
  assert.equal(routeOf(r, '10.8.0.4'), null);
  assert.equal(routeOf(r, 'fd00::3'), null);
  assert.equal(routeOf(r, '200.8.0.2'), null, 'high bit set (negative int32 key) misses cleanly');
  r.setVpnAddresses('c', ip('200.8.0.2'), ip('ffee::1'));
  assert.equal(routeOf(r, '200.8.0.2'), 'c');
  assert.equal(routeOf(r, 'ffee::1'), 'c');
  const p = packetTo('10.8.0.3', 64);
  assert.equal(r.route(p, 64, p.length - 64), 'b');
  assert.equal(r.peerWithVpnAddress(4, ip('10.8.0.2')), 'a');
  assert.equal(r.peerWithVpnAddress(6, ip('fd00::2')), 'a');
  assert.equal(r.peerWithVpnAddress(6, ip('fd00::3')), undefined);
});

test('route: short packets and versions other than 4 and 6 go nowhere', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), ip('fd00::2'));
  const v4 = packetTo('10.8.0.2');
  const v6 = packetTo('fd00::2');
  assert.equal(r.route(v4, 0, 20), 'a');
  assert.equal(r.route(v4, 0, 19), null);
  assert.equal(r.route(v6, 0, 40), 'a');
  assert.equal(r.route(v6, 0, 39), null);
  assert.equal(r.route(v4, 0, 0), null);
  for (const version of [0, 5, 7, 15]) {
    const p = Buffer.from(v6);
    p[0] = version << 4;
    assert.equal(r.route(p, 0, p.length), null, `version ${version}`);
  }
});

test('route: a gateway route goes to the peer whose VPN address is the gateway, or nowhere', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('gw', ip('5.5.5.2'), ip('fd00::5'));
  r.setVpnAddresses('other', ip('11.11.11.11'), null);
  r.replaceSystemRoutes([
    sys('11.11.11.11/32', '5.5.5.2'),
    sys('2001:db8::/32', 'fd00::5'),
    sys('12.0.0.0/8', '5.5.5.9'),
    sys('13.0.0.0/8', 'fd00::5'),
  ]);
  assert.equal(routeOf(r, '11.11.11.11'), 'gw', 'the route beats the peer that has the destination as VPN address');
  assert.equal(routeOf(r, '2001:db8:1::7'), 'gw');
  assert.equal(routeOf(r, '12.1.2.3'), null, 'gateway is no peer: dropped, not sent to the destination');
  assert.equal(routeOf(r, '13.1.2.3'), 'gw', 'IPv4 route via an IPv6 gateway');
});

test('route: a route without gateway sends to the peer with the destination address', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), ip('fd00::2'));
  r.replaceSystemRoutes([sys('10.8.0.0/24'), sys('fd00::/64'), sys('0.0.0.0/0', '10.8.0.2')]);
  assert.equal(routeOf(r, '10.8.0.2'), 'a');
  assert.equal(routeOf(r, '10.8.0.9'), null);
  assert.equal(routeOf(r, 'fd00::2'), 'a');
  assert.equal(routeOf(r, '8.8.8.8'), 'a', 'default route via a peer');
});

test('route: peer routes, longest prefix wins, more specific directly-reached route overrides a gateway route', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), null);
  r.setVpnAddresses('b', ip('10.8.0.3'), ip('fd00::3'));
  r.setVpnAddresses('c', ip('192.168.1.7'), null);
  r.addPeerRoute('a', 4, ip('192.168.0.0'), 16);
  r.addPeerRoute('b', 4, ip('192.168.5.0'), 24);
  r.addPeerRoute('b', 6, ip('2001:db8:5::'), 48);
  r.replaceSystemRoutes([sys('172.16.0.0/12', '10.8.0.2'), sys('172.16.9.0/24', '10.8.0.3'), sys('192.168.1.0/24')]);
  assert.equal(routeOf(r, '192.168.9.9'), 'a', 'peer route /16');
  assert.equal(routeOf(r, '192.168.5.1'), 'b', 'peer route /24 beats /16');
  assert.equal(routeOf(r, '192.168.1.7'), 'c', 'system /24 without gateway beats the peer /16: destination lookup');
  assert.equal(routeOf(r, '192.168.1.8'), null, 'matched route without gateway, no peer with that address');
  assert.equal(routeOf(r, '172.20.0.1'), 'a');
  assert.equal(routeOf(r, '172.16.9.200'), 'b', 'longer gateway route wins');
  assert.equal(routeOf(r, '2001:db8:5:ffff::1'), 'b');
  assert.equal(routeOf(r, '2001:db8:6::1'), null);
  r.replaceSystemRoutes([sys('172.16.0.0/12', '10.8.0.2'), sys('172.16.9.9/32')]);
  assert.equal(routeOf(r, '172.16.9.9'), null, 'a /32 without gateway overrides the /12 gateway route');
  r.setVpnAddresses('d', ip('172.16.9.9'), null);
  assert.equal(routeOf(r, '172.16.9.9'), 'd');
  assert.equal(routeOf(r, '172.16.9.8'), 'a');
});

test('route: at equal prefix a peer route beats a system route; the first of duplicate system routes counts', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), null);
  r.setVpnAddresses('b', ip('10.8.0.3'), null);
  r.replaceSystemRoutes([sys('20.0.0.0/8', '10.8.0.3'), sys('20.0.0.0/8', '10.8.0.2')]);
  assert.equal(routeOf(r, '20.1.1.1'), 'b');
  r.addPeerRoute('a', 4, ip('20.0.0.0'), 8);
  assert.equal(routeOf(r, '20.1.1.1'), 'a');
  assert.equal(r.removePeerRoute('a', 4, ip('20.0.0.0'), 8), true);
  assert.equal(routeOf(r, '20.1.1.1'), 'b', 'the system route survives the peer route');
});

test('removePeer forgets its addresses and its routes, and nothing else', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), ip('fd00::2'));
  r.setVpnAddresses('b', ip('10.8.0.3'), null);
  r.addPeerRoute('a', 4, ip('192.168.0.0'), 16);
  r.addPeerRoute('a', 6, ip('2001:db8::'), 32);
  r.addPeerRoute('b', 4, ip('192.168.7.0'), 24);
  r.replaceSystemRoutes([sys('30.0.0.0/8', '10.8.0.2')]);
  r.removePeer('a');
  assert.equal(routeOf(r, '10.8.0.2'), null);
  assert.equal(routeOf(r, 'fd00::2'), null);
  assert.equal(routeOf(r, '192.168.1.1'), null);
  assert.equal(routeOf(r, '2001:db8::1'), null);
  assert.equal(routeOf(r, '30.0.0.1'), null, 'the system route stays but its gateway is gone');
  assert.equal(routeOf(r, '192.168.7.1'), 'b');
  assert.deepEqual(r.peerRoutes('a'), []);
  assert.equal(r.peerWithVpnAddress(4, ip('10.8.0.2')), undefined);
  r.setVpnAddresses('c', ip('10.8.0.2'), null);
  assert.equal(routeOf(r, '30.0.0.1'), 'c', 'a new peer with the address takes the gateway route');
  r.addPeerRoute('c', 4, ip('192.168.0.0'), 16);
  assert.equal(routeOf(r, '192.168.1.1'), 'c', 'the prefix is free again');
  r.removePeer('nobody');
});

test('IPv6 addresses whose hashes collide are told apart, and deleting one keeps the other', () => {
  // Birthday search over the low 64 bits: ~2^16 tries for a 32-bit hash.
  const seen = new Map<number, [number, number]>();
  let pair: [Uint8Array, Uint8Array] | undefined;
  const addr = (w2: number, w3: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(0xfd000000, 0);
    b.writeInt32BE(w2, 8);
    b.writeInt32BE(w3, 12);
    return new Uint8Array(b);
  };
  for (let i = 1; pair === undefined && i < 2_000_000; i++) {
    const w2 = Math.imul(i, 0x01000193) | 0;
    const w3 = Math.imul(i, 0x5bd1e995) | 0;
    const h = hash6(0xfd000000 | 0, 0, w2, w3);
    const other = seen.get(h);
    if (other !== undefined) pair = [addr(...other), addr(w2, w3)];
    else seen.set(h, [w2, w3]);
  }
  assert.ok(pair, 'found a collision');
  const [x, y] = pair;
  const r = new PeerRouter<string>();
  r.setVpnAddresses('x', null, x);
  r.setVpnAddresses('y', null, y);
  r.addPeerRoute('x', 6, x, 128);
  assert.equal(routeOf(r, formatIp(x)), 'x');
  assert.equal(routeOf(r, formatIp(y)), 'y');
  // Entries are chained newest first: remove the head (y), then the tail (x).
  r.removePeer('y');
  assert.equal(r.peerWithVpnAddress(6, x), 'x');
  assert.equal(routeOf(r, formatIp(x)), 'x');
  assert.equal(routeOf(r, formatIp(y)), null);
  r.setVpnAddresses('y', null, y);
  r.removePeer('x');
  assert.equal(routeOf(r, formatIp(x)), null);
  assert.equal(routeOf(r, formatIp(y)), 'y');
});

test('replaceSystemRoutes replaces the previous set entirely', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), null);
  r.setVpnAddresses('b', ip('10.8.0.3'), null);
  r.replaceSystemRoutes([sys('40.0.0.0/8', '10.8.0.2'), sys('41.0.0.0/8', '10.8.0.2')]);
  assert.equal(routeOf(r, '40.0.0.1'), 'a');
  assert.equal(routeOf(r, '41.0.0.1'), 'a');
  r.replaceSystemRoutes([sys('40.0.0.0/8', '10.8.0.3')]);
  assert.equal(routeOf(r, '40.0.0.1'), 'b');
  assert.equal(routeOf(r, '41.0.0.1'), null);
  r.replaceSystemRoutes([]);
  assert.equal(routeOf(r, '40.0.0.1'), null);
  assert.equal(routeOf(r, '10.8.0.2'), 'a');
});

test('setVpnAddresses replaces; a VPN address or peer route owned by another peer is refused', () => {
  const r = new PeerRouter<string>();
  r.setVpnAddresses('a', ip('10.8.0.2'), ip('fd00::2'));
  r.setVpnAddresses('a', ip('10.8.0.22'), null);
  assert.equal(routeOf(r, '10.8.0.2'), null);
  assert.equal(routeOf(r, 'fd00::2'), null);
  assert.equal(routeOf(r, '10.8.0.22'), 'a');
  assert.throws(() => r.setVpnAddresses('b', ip('10.8.0.22'), null), {
    message: 'vpn-ipv4 10.8.0.22 is already assigned to another peer: delete that peer or pick another address',
  });
  r.setVpnAddresses('b', null, ip('fd00::22'));
  assert.throws(() => r.setVpnAddresses('a', ip('10.8.0.22'), ip('fd00::22')), {
    message: 'vpn-ipv6 fd00::22 is already assigned to another peer: delete that peer or pick another address',
  });
  assert.equal(routeOf(r, '10.8.0.22'), 'a', 'a refused change changes nothing');
  assert.throws(() => r.setVpnAddresses('a', new Uint8Array(16), null), {
    message: 'vpn-ipv4 must have 4 bytes, got 16',
  });
  r.addPeerRoute('a', 4, ip('10.1.0.0'), 16);
  r.addPeerRoute('a', 4, ip('10.1.0.0'), 16);
  assert.throws(() => r.addPeerRoute('b', 4, ip('10.1.0.0'), 16), {
    message: 'peer route 10.1.0.0/16 already belongs to another peer: remove it there first',
  });
  assert.equal(r.removePeerRoute('b', 4, ip('10.1.0.0'), 16), false);
  assert.equal(routeOf(r, '10.1.2.3'), 'a');
});

test('prefixes are checked like ip route add: length range, byte count, host bits', () => {
  const r = new PeerRouter<string>();
  assert.throws(() => r.addPeerRoute('a', 4, ip('10.1.0.1'), 16), {
    message: 'peer route 10.1.0.1/16 has host bits set: use 10.1.0.0/16',
  });
  assert.throws(() => r.addPeerRoute('a', 6, ip('2001:db8::1'), 64), {
    message: 'peer route 2001:db8::1/64 has host bits set: use 2001:db8::/64',
  });
  assert.throws(() => r.addPeerRoute('a', 4, ip('10.1.0.0'), 33), {
    message: 'peer route prefix length must be an integer from 0 to 32, got 33',
  });
  assert.throws(() => r.addPeerRoute('a', 6, ip('10.1.0.0'), 8), {
    message: 'peer route destination must have 16 bytes, got 4',
  });
  assert.throws(
    () =>
      r.replaceSystemRoutes([
        sys('10.0.0.0/8'),
        { family: 4, dst: ip('11.0.0.0'), prefixLen: 8, gateway: new Uint8Array(3) },
      ]),
    {
      message: 'system route gateway must have 4 or 16 bytes, got 3',
    },
  );
  assert.equal(routeOf(r, '10.0.0.1'), null, 'a refused replacement installs nothing');
  assert.deepEqual(r.peerRoutes('a'), []);
});

test('peerRoutes reports the prefixes attached to a peer', () => {
  const r = new PeerRouter<string>();
  r.addPeerRoute('a', 4, ip('192.168.0.0'), 16);
  r.addPeerRoute('a', 6, ip('2001:db8::'), 32);
  r.addPeerRoute('a', 4, ip('0.0.0.0'), 0);
  assert.deepEqual(r.peerRoutes('a'), [
    { family: 4, address: '192.168.0.0', prefixLen: 16 },
    { family: 6, address: '2001:db8::', prefixLen: 32 },
    { family: 4, address: '0.0.0.0', prefixLen: 0 },
  ]);
  assert.equal(r.removePeerRoute('a', 4, ip('192.168.0.0'), 16), true);
  assert.equal(r.removePeerRoute('a', 4, ip('192.168.0.0'), 16), false);
  assert.deepEqual(
    r.peerRoutes('a').map((x) => `${x.address}/${x.prefixLen}`),
    ['2001:db8::/32', '0.0.0.0/0'],
  );
  assert.equal(routeOf(r, '8.8.8.8'), 'a', '/0 peer route');
});

// ---- property: same answers as a naive reference ----------------------------------------------------

/** Bit i (from the most significant) of an address. */
const bit = (b: Uint8Array, i: number) => (b[i >> 3]! >> (7 - (i & 7))) & 1;
const matches = (dst: Uint8Array, prefix: Uint8Array, len: number) => {
  for (let i = 0; i < len; i++) if (bit(dst, i) !== bit(prefix, i)) return false;
  return true;
};
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
function masked(b: Uint8Array, len: number): Uint8Array {
  const out = Uint8Array.from(b);
  for (let i = len; i < out.length * 8; i++) out[i >> 3]! &= ~(1 << (7 - (i & 7)));
  return out;
}

interface Model {
  peers: { v4: Uint8Array | null; v6: Uint8Array | null }[];
  system: SystemRoute[];
  peerRoutes: { peer: number; family: 4 | 6; dst: Uint8Array; prefixLen: number }[];
}

/** Reference: scan everything, longest prefix, peer route before system route, first system route first. */
function reference(m: Model, dst: Uint8Array): number | null {
  const family = dst.length === 4 ? 4 : 6;
  const byAddress = (a: Uint8Array): number | null => {
    const i = m.peers.findIndex(
      (p) => (a.length === 4 ? p.v4 : p.v6) !== null && sameBytes((a.length === 4 ? p.v4 : p.v6)!, a),
    );
    return i < 0 ? null : i;
  };
  let best: { len: number; peer: number | null; gateway: Uint8Array | null } | null = null;
  for (const pr of m.peerRoutes) {
    if (pr.family === family && matches(dst, pr.dst, pr.prefixLen) && (best === null || pr.prefixLen > best.len))
      best = { len: pr.prefixLen, peer: pr.peer, gateway: null };
  }
  for (const s of m.system) {
    if (s.family === family && matches(dst, s.dst, s.prefixLen) && (best === null || s.prefixLen > best.len))
      best = { len: s.prefixLen, peer: null, gateway: s.gateway };
  }
  if (best === null) return byAddress(dst);
  if (best.peer !== null) return best.peer;
  return best.gateway === null ? byAddress(dst) : byAddress(best.gateway);
}

test('property: route() agrees with a naive longest-prefix-match reference', () => {
  // Small address pools so prefixes, gateways and destinations collide often.
  const v4 = fc.constantFrom(
    ...['10.0.0.1', '10.0.0.2', '10.0.1.1', '10.1.0.1', '192.168.1.1', '200.0.0.1', '10.0.0.0'].map(ip),
  );
  const v6 = fc.constantFrom(...['fd00::1', 'fd00::2', 'fd00:0:0:1::1', 'fd01::1', '2001:db8::1', 'ff00::1'].map(ip));
  const prefix = fc.oneof(
    v4.chain((a) =>
      fc.integer({ min: 0, max: 32 }).map((len) => ({ family: 4 as const, dst: masked(a, len), prefixLen: len })),
    ),
    v6.chain((a) =>
      fc.integer({ min: 0, max: 128 }).map((len) => ({ family: 6 as const, dst: masked(a, len), prefixLen: len })),
    ),
  );
  const model = fc
    .record({
      peers: fc.array(fc.record({ v4: fc.option(v4), v6: fc.option(v6) }), { minLength: 1, maxLength: 6 }),
      system: fc.array(
        fc.tuple(prefix, fc.option(fc.oneof(v4, v6))).map(([p, gateway]) => ({ ...p, gateway })),
        { maxLength: 8 },
      ),
      peerRoutes: fc.array(
        fc.tuple(fc.nat(5), prefix).map(([peer, p]) => ({ peer, ...p })),
        { maxLength: 6 },
      ),
    })
    .map((m) => {
      // Like the interface would: a VPN address and a peer prefix belong to one peer only.
      const seen = new Set<string>();
      const unique = (a: Uint8Array | null) => {
        if (a === null || seen.has(formatIp(a))) return null;
        seen.add(formatIp(a));
        return a;
      };
      const peers = m.peers.map((p) => ({ v4: unique(p.v4), v6: unique(p.v6) }));
      const owned = new Set<string>();
      const peerRoutes = m.peerRoutes
        .map((r) => ({ ...r, peer: r.peer % peers.length }))
        .filter((r) => {
          const key = `${formatIp(r.dst)}/${r.prefixLen}`;
          if (owned.has(key)) return false;
          owned.add(key);
          return true;
        });
      return { peers, system: m.system, peerRoutes };
    });
  fc.assert(
    fc.property(
      model,
      fc.array(
        fc.oneof(
          v4,
          v6,
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
        ),
        { minLength: 1, maxLength: 12 },
      ),
      (m, dsts) => {
        const r = new PeerRouter<number>();
        for (const [i, p] of m.peers.entries()) r.setVpnAddresses(i, p.v4, p.v6);
        r.replaceSystemRoutes(m.system);
        for (const pr of m.peerRoutes) r.addPeerRoute(pr.peer, pr.family, pr.dst, pr.prefixLen);
        for (const dst of dsts) assert.equal(routeOf(r, formatIp(dst)), reference(m, dst), `dst ${formatIp(dst)}`);
        // Removing a peer must equal a model without its addresses and routes.
        const gone = 0;
        r.removePeer(gone);
        const after: Model = {
          peers: m.peers.map((p, i) => (i === gone ? { v4: null, v6: null } : p)),
          system: m.system,
          peerRoutes: m.peerRoutes.filter((x) => x.peer !== gone),
        };
        for (const dst of dsts)
          assert.equal(routeOf(r, formatIp(dst)), reference(after, dst), `after removePeer, dst ${formatIp(dst)}`);
      },
    ),
    { numRuns: 500 },
  );
});
