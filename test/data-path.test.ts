/**
 * The whole data path without root: interfaces joined by the in-memory edges (src/edge/memory.ts)
 * in one process, so transmit, receive, routing, float, multihome, keepalive, keys, replay and
 * control packets are checked on bytes, counters and events, with time moved by hand.
 *
 * Nothing here sleeps. A test waits for the thing it expects (a packet written to a TUN, a
 * datagram on a socket, an event, a counter) for at most TURNS turns of the event loop, which
 * is where the fakes' readiness callbacks run; a packet that never comes fails the test instead
 * of hanging it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { newBatch, pushPacket } from '../src/core/batch.js';
import type { CipherAlg } from '../src/core/cipher.js';
import { totalDrops } from '../src/core/drops.js';
import { newEndpoints, readEndpoint, writeEndpoint } from '../src/core/endpoint.js';
import { parseIp } from '../src/core/ip.js';
import { type KeyConfig, KeyContext } from '../src/core/key-context.js';
import { PacketIdSender } from '../src/core/packet-id.js';
import { KEEPALIVE_MESSAGE, PEER_ID_UNDEF } from '../src/core/wire.js';
import {
  OvpnInterface,
  type PacketEvent,
  type PeerDelEvent,
  type PeerFloatEvent,
} from '../src/device/ovpn-interface.js';
import { type MemoryBind, type MemoryHost, MemoryNetwork, type MemoryTun } from '../src/edge/memory.js';
import { installKey, keyPair, openOne, sealOne } from './helpers/keys.js';
import { ipv4Packet } from './helpers/packets.js';

const PORT = 1194;
/** The P2P pair's peer id: DATA_V2 carries the sender's id, so both sides use the same one. */
const PEER = 1;
const LINK = { a: '10.0.0.1', b: '10.0.0.2' } as const;
const VPN = { a: '5.5.5.1', b: '5.5.5.2' } as const;
/** DATA_V2 header (4), packet-id (4) and tag (16) of the AEAD ciphers. */
const OVERHEAD = 24;
/** Opcode 9 (DATA_V2) in the top five bits of the first byte, the key-id in the low three. */
const DATA_V2_KEY0 = 0x48;

// ---- waiting without sleeping ---------------------------------------------------------------

/** More than any hop needs: inject → seal → deliver → open → write takes two or three turns. */
const TURNS = 50;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** `promise`, if it settles within TURNS turns of the event loop; else a failure naming `what`. */
async function soon<T>(promise: Promise<T>, what: string): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  for (let i = 0; i < TURNS && !settled; i++) await turn();
  if (!settled) assert.fail(`${what}: nothing after ${TURNS} turns of the event loop`);
  return watched;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < TURNS; i++) {
    if (condition()) return;
    await turn();
  }
  assert.fail(`${what}: not so after ${TURNS} turns of the event loop`);
}

// ---- fixtures --------------------------------------------------------------------------------

interface EventLog {
  del: PeerDelEvent[];
  float: PeerFloatEvent[];
}

/** The peers an interface deleted and saw move, in order: counted as well as awaited. */
function record(iface: OvpnInterface): EventLog {
  const log: EventLog = { del: [], float: [] };
  iface.on('peer-del-ntf', (e) => log.del.push(e));
  iface.on('peer-float-ntf', (e) => log.float.push(e));
  return log;
}

interface Side {
  host: MemoryHost;
  iface: OvpnInterface;
  tun: MemoryTun;
  log: EventLog;
}

function side(net: MemoryNetwork, address: string, mode: 'P2P' | 'MP' = 'P2P'): Side {
  const host = net.host(address);
  const iface = OvpnInterface.create({ name: 'tun0', mode, edges: host.edges });
  return { host, iface, tun: host.tun('tun0'), log: record(iface) };
}

const WIRE = { address: '10.0.0.100', port: 5000 } as const;

interface Caught {
  data: Buffer;
  toward: 'a' | 'b';
}

/**
 * A middlebox that both peers of a pair have as their remote: every datagram stops at this
 * test-owned socket until the test passes it on, so it can read, hold, repeat or alter the wire
 * bytes. It passes them on from its own address and port, the remote each peer expects, so
 * passing moves nobody.
 */
class Wire {
  constructor(
    readonly host: MemoryHost,
    readonly bind: MemoryBind,
  ) {}

  async catch(what: string): Promise<Caught> {
    const { data, from } = await soon(this.bind.next(), what);
    assert.ok(from.address === LINK.a || from.address === LINK.b, `caught a datagram from ${from.address}`);
    return { data, toward: from.address === LINK.a ? 'b' : 'a' };
  }

  pass(caught: Caught): void {
    this.send(caught.data, caught.toward);
  }

  send(data: Uint8Array, toward: 'a' | 'b'): void {
    this.bind.sendTo(data, { address: LINK[toward], port: PORT });
  }
}

interface Pair {
  net: MemoryNetwork;
  a: Side & { key: KeyConfig };
  b: Side & { key: KeyConfig };
}

/**
 * Two P2P interfaces a (10.0.0.1) and b (10.0.0.2) on UDP port 1194, one peer each with id
 * PEER and a primary key (key-id 0) of `cipher`: a's encrypt direction is b's decrypt. With a
 * wire, each peer's remote is the Wire's socket instead of the other host.
 */
function p2pPair(cipher?: CipherAlg): Pair;
function p2pPair(cipher: CipherAlg, withWire: true): Pair & { wire: Wire };
function p2pPair(cipher: CipherAlg = 'AES-256-GCM', withWire = false): Pair & { wire?: Wire } {
  const net = new MemoryNetwork();
  let wire: Wire | undefined;
  if (withWire) {
    const host = net.host(WIRE.address);
    wire = new Wire(host, host.openUdp(WIRE.port));
  }
  const [keyA, keyB] = keyPair(cipher);
  const make = (name: 'a' | 'b', key: KeyConfig) => {
    const s = side(net, LINK[name]);
    const other = LINK[name === 'a' ? 'b' : 'a'];
    const remote =
      wire === undefined
        ? { remoteIpv4: other, remotePort: PORT }
        : { remoteIpv4: WIRE.address, remotePort: WIRE.port };
    s.iface.newPeer({ id: PEER, localPort: PORT, ...remote });
    installKey(s.iface, PEER, key);
    return { ...s, key };
  };
  return { net, a: make('a', keyA), b: make('b', keyB), ...(wire === undefined ? {} : { wire }) };
}

const SERVER = { link: '10.0.1.1', vpn: '5.5.5.1' } as const;

interface MpClient extends Side {
  /** The server's peer id for this client, and the id of the client's one peer. */
  id: number;
  vpn: string;
  link: string;
}

/**
 * A multi-peer server (10.0.1.1, VPN 5.5.5.1) with `count` P2P clients: client i (from 0) is
 * peer 11+i at 10.0.1.(2+i), VPN address 5.5.5.(2+i), each with its own key and cipher. Ids,
 * link and VPN addresses all differ, so a packet sent to the wrong one shows.
 */
function mpServer(count: number): { net: MemoryNetwork; server: Side; clients: MpClient[] } {
  const net = new MemoryNetwork();
  const server = side(net, SERVER.link, 'MP');
  const ciphers: CipherAlg[] = ['AES-256-GCM', 'CHACHA20-POLY1305', 'AES-128-GCM'];
  const clients: MpClient[] = [];
  for (let i = 0; i < count; i++) {
    const id = 11 + i;
    const link = `10.0.1.${2 + i}`;
    const vpn = `5.5.5.${2 + i}`;
    const [serverKey, clientKey] = keyPair(ciphers[i % ciphers.length]!);
    server.iface.newPeer({ id, localPort: PORT, remoteIpv4: link, remotePort: PORT, vpnIpv4: vpn });
    installKey(server.iface, id, serverKey);
    const client = side(net, link);
    client.iface.newPeer({ id, localPort: PORT, remoteIpv4: SERVER.link, remotePort: PORT });
    installKey(client.iface, id, clientKey);
    clients.push({ ...client, id, vpn, link });
  }
  return { net, server, clients };
}

const ip = (text: string): Uint8Array => parseIp(text)!.bytes;

/** The traffic counters of a peer, without its addresses and drops. */
function counters(iface: OvpnInterface, id: number) {
  const p = iface.getPeer(id);
  return {
    vpnTxPackets: p.vpnTxPackets,
    vpnTxBytes: p.vpnTxBytes,
    vpnRxPackets: p.vpnRxPackets,
    vpnRxBytes: p.vpnRxBytes,
    linkTxPackets: p.linkTxPackets,
    linkTxBytes: p.linkTxBytes,
    linkRxPackets: p.linkRxPackets,
    linkRxBytes: p.linkRxBytes,
  };
}

/** Every drop counter of an interface and of one of its peers, flat: `iface.noRoute`, `peer.auth`. */
function dropCounters(iface: OvpnInterface, id: number): Record<string, number> {
  const flat: Record<string, number> = {};
  for (const [name, value] of Object.entries(iface.info().drops)) flat[`iface.${name}`] = value;
  for (const [name, value] of Object.entries(iface.getPeer(id).drops)) flat[`peer.${name}`] = value;
  return flat;
}

/** The counters that changed, with how much. */
function changed(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const diff: Record<string, number> = {};
  for (const [name, value] of Object.entries(after)) if (value !== before[name]) diff[name] = value - before[name]!;
  return diff;
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

// ---- point to point ----------------------------------------------------------------------------

/** What the first byte, peer-id and packet-id of a datagram caught on the wire say. */
function header(data: Buffer) {
  return { opByte: data[0], peerId: data.readUIntBE(1, 3), packetId: data.readUInt32BE(4) };
}

for (const cipher of ['AES-256-GCM', 'CHACHA20-POLY1305'] as const) {
  test(`P2P ${cipher}: packets cross both ways byte-identical, as DATA_V2 with peer-id, key-id and 24 bytes of overhead; counters match`, async () => {
    const { a, b, wire } = p2pPair(cipher, true);
    const first = ipv4Packet(VPN.a, VPN.b, 'first from a');
    a.tun.inject(first);
    const caught = await wire.catch('a seals the packet and sends it to its remote');
    assert.equal(caught.toward, 'b');
    assert.equal(caught.data.length, first.length + OVERHEAD);
    assert.deepEqual(header(caught.data), { opByte: DATA_V2_KEY0, peerId: PEER, packetId: 1 });
    assert.equal(caught.data.includes(Buffer.from('first from a')), false, 'the payload does not travel in clear');
    // A key context of its own with b's key material opens it: the cipher is the one named.
    assert.deepEqual(openOne(new KeyContext(b.key), caught.data), first);
    wire.pass(caught);
    assert.deepEqual(await soon(b.tun.written.next(), 'b writes it to its TUN'), first);

    // A burst of one flow, read as one batch: sealed in order with consecutive packet-ids.
    const burst = ['burst 1', 'burst 2', 'burst 3'].map((text) => ipv4Packet(VPN.a, VPN.b, text));
    for (const packet of burst) a.tun.inject(packet);
    for (const [i, packet] of burst.entries()) {
      const next = await wire.catch(`burst packet ${i + 1} on the wire`);
      assert.deepEqual(header(next.data), { opByte: DATA_V2_KEY0, peerId: PEER, packetId: 2 + i });
      wire.pass(next);
      assert.deepEqual(await soon(b.tun.written.next(), `burst packet ${i + 1} on b's TUN`), packet);
    }

    const reply = ipv4Packet(VPN.b, VPN.a, 'reply from b, a little longer');
    b.tun.inject(reply);
    const back = await wire.catch('b seals the reply');
    assert.equal(back.toward, 'a');
    assert.equal(back.data.length, reply.length + OVERHEAD);
    assert.deepEqual(header(back.data), { opByte: DATA_V2_KEY0, peerId: PEER, packetId: 1 });
    assert.deepEqual(openOne(new KeyContext(a.key), back.data), reply);
    wire.pass(back);
    assert.deepEqual(await soon(a.tun.written.next(), 'a writes the reply to its TUN'), reply);

    const aSent = [first, ...burst].reduce((n, p) => n + p.length, 0);
    const aToB = { packets: 4, vpnBytes: aSent, linkBytes: aSent + 4 * OVERHEAD };
    const bToA = { packets: 1, vpnBytes: reply.length, linkBytes: reply.length + OVERHEAD };
    const expect = (out: typeof aToB, back: typeof aToB) => ({
      vpnTxPackets: out.packets,
      vpnTxBytes: out.vpnBytes,
      vpnRxPackets: back.packets,
      vpnRxBytes: back.vpnBytes,
      linkTxPackets: out.packets,
      linkTxBytes: out.linkBytes,
      linkRxPackets: back.packets,
      linkRxBytes: back.linkBytes,
    });
    assert.deepEqual(counters(a.iface, PEER), expect(aToB, bToA));
    assert.deepEqual(counters(b.iface, PEER), expect(bToA, aToB));
    for (const s of [a, b]) {
      assert.equal(sum(dropCounters(s.iface, PEER)), 0);
      assert.deepEqual(s.tun.written.drain(), [], 'nothing else reached a TUN');
      assert.deepEqual(s.log.float, [], 'datagrams passed on by the wire come from the remote each peer has');
    }
  });
}

test('float: an authenticated packet from a new address moves the peer and notifies once; forged and replayed ones from elsewhere move nothing', async () => {
  const { net, a, b } = p2pPair('CHACHA20-POLY1305');
  const toA = (text: string) => ipv4Packet(VPN.b, VPN.a, text);
  const bSends = async (text: string) => {
    const packet = toA(text);
    b.tun.inject(packet);
    assert.deepEqual(await soon(a.tun.written.next(), `a gets "${text}"`), packet);
  };
  const aSends = async (text: string) => {
    const packet = ipv4Packet(VPN.a, VPN.b, text);
    a.tun.inject(packet);
    assert.deepEqual(await soon(b.tun.written.next(), `b gets "${text}"`), packet);
  };
  await bSends('from the configured address');
  assert.deepEqual(a.log.float, [], 'the address a was configured with is no move');

  // b's host is renumbered: the old address goes, a new one comes.
  b.host.setAddress('10.0.0.3', true);
  b.host.setAddress(LINK.b, false);
  await bSends('from the new address');
  const moved = { address: '10.0.0.3', port: PORT, family: 4, local: LINK.a, ifindex: 1 };
  assert.deepEqual(a.log.float, [{ ifname: 'tun0', peerId: PEER, remote: moved }]);
  assert.equal(a.iface.getPeer(PEER).remoteIpv4, '10.0.0.3');
  await aSends('to the new address');
  await bSends('again from the new address');
  assert.equal(a.log.float.length, 1, 'one notification per move');

  // Someone else, elsewhere: a forgery (a tag bit flipped), random bytes under b's peer-id, and
  // b's first datagram byte for byte (same key, packet-id 1, same plaintext).
  const attacker = net.host('10.0.0.66').openUdp(PORT);
  const forged = Buffer.from(sealOne(new KeyContext(b.key, new PacketIdSender(1000)), toA('forged'), PEER));
  forged[10]! ^= 1;
  const random = Buffer.concat([Buffer.from([DATA_V2_KEY0, 0, 0, PEER, 0, 0, 0x07, 0xd0]), Buffer.alloc(40, 0x5a)]);
  const replayed = sealOne(new KeyContext(b.key), toA('from the configured address'), PEER);
  const before = dropCounters(a.iface, PEER);
  for (const data of [forged, random, replayed]) attacker.sendTo(data, { address: LINK.a, port: PORT });
  await until(() => sum(changed(before, dropCounters(a.iface, PEER))) === 3, 'the three datagrams are counted');
  assert.deepEqual(changed(before, dropCounters(a.iface, PEER)), { 'peer.auth': 2, 'peer.replay': 1 });
  assert.equal(a.iface.getPeer(PEER).remoteIpv4, '10.0.0.3');
  assert.equal(a.log.float.length, 1);
  assert.deepEqual(a.tun.written.drain(), []);
  await aSends('still to the new address');
  assert.equal(net.lost, 0, 'no reply went to an address b no longer has');
});

test('keepalive: at interval 1 s and timeout 3 s keepalives cross every second and reach no TUN; a silent peer expires after 3 s', async () => {
  const { net, a, b, wire } = p2pPair('AES-256-GCM', true);
  for (const s of [a, b]) s.iface.setPeer({ id: PEER, keepaliveInterval: 1, keepaliveTimeout: 3 });
  const linkTx = () => [a, b].map((s) => s.iface.getPeer(PEER).linkTxPackets);
  const lastRx = () => [a, b].map((s) => s.iface.getPeer(PEER).lastRxAgeMs);
  assert.deepEqual(lastRx(), [undefined, undefined], 'no packet received yet: no age (show says never)');
  // Four seconds: longer than the timeout, so a peer that did not take keepalives as a sign of
  // life would have expired.
  for (let second = 1; second <= 4; second++) {
    net.clock.advance(999);
    assert.deepEqual(linkTx(), [second - 1, second - 1], `no keepalive before ${second} s`);
    net.clock.advance(1);
    assert.deepEqual(linkTx(), [second, second], `one keepalive each at ${second} s`);
    const caught = [await wire.catch('a keepalive'), await wire.catch('the other keepalive')];
    assert.deepEqual(caught.map((c) => c.toward).sort(), ['a', 'b']);
    for (const c of caught) {
      const receiver = c.toward === 'a' ? a : b;
      assert.equal(c.data.length, KEEPALIVE_MESSAGE.length + OVERHEAD);
      assert.deepEqual(header(c.data), { opByte: DATA_V2_KEY0, peerId: PEER, packetId: second });
      assert.deepEqual(openOne(new KeyContext(receiver.key), c.data), KEEPALIVE_MESSAGE, 'sealed as data');
      wire.pass(c);
    }
    await until(
      () => a.iface.getPeer(PEER).linkRxPackets === second && b.iface.getPeer(PEER).linkRxPackets === second,
      `keepalives of ${second} s received`,
    );
  }
  const keepalives = { packets: 4, bytes: 4 * (KEEPALIVE_MESSAGE.length + OVERHEAD) };
  for (const s of [a, b]) {
    assert.deepEqual(counters(s.iface, PEER), {
      vpnTxPackets: 0,
      vpnTxBytes: 0,
      vpnRxPackets: 0,
      vpnRxBytes: 0,
      linkTxPackets: keepalives.packets,
      linkTxBytes: keepalives.bytes,
      linkRxPackets: keepalives.packets,
      linkRxBytes: keepalives.bytes,
    });
    assert.deepEqual(s.tun.written.drain(), [], 'keepalives are consumed, not written to the TUN');
    assert.equal(sum(dropCounters(s.iface, PEER)), 0);
    assert.deepEqual(s.log.del, []);
  }

  net.clock.advance(500);
  assert.deepEqual(lastRx(), [500, 500], 'the age of the last keepalive received (peer-get last-rx-age-ms)');
  // b goes away without a word; a last heard from it at 4 s, so its peer expires at 7 s.
  b.iface.destroy();
  assert.deepEqual(b.log.del, [{ ifname: 'tun0', peerId: PEER, reason: 'TEARDOWN' }]);
  net.clock.advance(2499);
  assert.deepEqual(a.log.del, [], 'not expired before the timeout');
  net.clock.advance(1);
  assert.deepEqual(a.log.del, [{ ifname: 'tun0', peerId: PEER, reason: 'EXPIRED' }]);
  assert.throws(() => a.iface.getPeer(PEER), {
    name: 'OvpnError',
    code: 'ENOENT',
    message: 'cannot find peer with id 1',
  });
  assert.equal(a.iface.info().peers, 0);
});

test('keepalive without a key: one attempt per interval, each counted noKey, not one per tick', async () => {
  const { net, a } = p2pPair();
  a.iface.delKey(PEER);
  a.iface.setPeer({ id: PEER, keepaliveInterval: 1, keepaliveTimeout: 0 });
  net.clock.advance(3000);
  assert.equal(a.iface.getPeer(PEER).drops.noKey, 3);
});

test('key swap: traffic moves to the new key-id, packets sealed under the old key before the swap still open; a deleted key counts noKey', async () => {
  const { a, b, wire } = p2pPair('AES-256-GCM', true);
  const toB = (text: string) => ipv4Packet(VPN.a, VPN.b, text);
  const sealedByA = (packet: Buffer, what: string) => {
    a.tun.inject(packet);
    return wire.catch(what);
  };
  const reachesB = async (caught: Caught, packet: Buffer, what: string) => {
    wire.pass(caught);
    assert.deepEqual(await soon(b.tun.written.next(), what), packet);
  };
  const old = [toB('old key'), toB('old key, in flight'), toB('old key, in flight too')];
  const first = await sealedByA(old[0]!, 'a packet under key 0');
  assert.equal(first.data[0], DATA_V2_KEY0);
  await reachesB(first, old[0]!, 'key 0 works');
  // Sealed now, delivered after the swap: what is on the wire while both sides swap.
  const inFlight = [await sealedByA(old[1]!, 'in flight 1'), await sealedByA(old[2]!, 'in flight 2')];

  const [newA, newB] = keyPair('AES-256-GCM', 1);
  installKey(a.iface, PEER, newA, 'secondary');
  installKey(b.iface, PEER, newB, 'secondary');
  for (const s of [a, b]) s.iface.swapKeys(PEER);
  const key = (slot: 'primary' | 'secondary', keyId: number) => ({
    peerId: PEER,
    slot,
    keyId,
    cipherAlg: 'AES-256-GCM',
  });
  assert.deepEqual(a.iface.getKey(PEER, 'primary'), key('primary', 1));
  assert.deepEqual(a.iface.getKey(PEER, 'secondary'), key('secondary', 0));

  const fresh = toB('new key');
  const sealedNew = await sealedByA(fresh, 'a packet after the swap');
  assert.deepEqual(header(sealedNew.data), { opByte: DATA_V2_KEY0 | 1, peerId: PEER, packetId: 1 });
  assert.deepEqual(openOne(new KeyContext(newB), sealedNew.data), fresh, 'sealed with the new key');
  await reachesB(sealedNew, fresh, 'key 1 works');
  await reachesB(inFlight[0]!, old[1]!, 'a packet sealed under key 0 before the swap opens after it');
  const reply = ipv4Packet(VPN.b, VPN.a, 'reply on the new key');
  b.tun.inject(reply);
  const back = await wire.catch("b's reply");
  assert.equal(back.data[0], DATA_V2_KEY0 | 1);
  wire.pass(back);
  assert.deepEqual(await soon(a.tun.written.next(), 'the reply on key 1'), reply);

  // The old key is retired: what is still in flight under it is dropped and counted.
  b.iface.delKey(PEER, 'secondary');
  assert.throws(() => b.iface.getKey(PEER, 'secondary'), {
    code: 'ENOENT',
    message: 'peer 1 has no key in the secondary slot',
  });
  const before = dropCounters(b.iface, PEER);
  wire.pass(inFlight[1]!);
  await until(() => b.iface.getPeer(PEER).drops.noKey === 1, 'a packet under the deleted key is counted');
  assert.deepEqual(changed(before, dropCounters(b.iface, PEER)), { 'peer.noKey': 1 });
  assert.deepEqual(b.tun.written.drain(), []);

  // With no key at all, a seals nothing and sends nothing.
  a.iface.delKey(PEER);
  const sentBefore = a.iface.getPeer(PEER).linkTxPackets;
  a.tun.inject(toB('no key to seal with'));
  await until(() => a.iface.getPeer(PEER).drops.noKey === 1, 'the packet without a key is counted');
  assert.equal(a.iface.getPeer(PEER).linkTxPackets, sentBefore);
});

test('bad datagrams: each lands in exactly one drop counter and reaches no TUN; a replay is not written twice', async () => {
  const { a, b, wire } = p2pPair('AES-256-GCM', true);
  const first = ipv4Packet(VPN.a, VPN.b, 'first');
  a.tun.inject(first);
  const c1 = await wire.catch('first');
  wire.pass(c1);
  assert.deepEqual(await soon(b.tun.written.next(), 'first on b'), first);
  // Held: its packet-id 2 stays unseen at b, so its altered copies get as far as authentication.
  const second = ipv4Packet(VPN.a, VPN.b, 'second, held on the wire');
  a.tun.inject(second);
  const c2 = await wire.catch('second');

  const flip = (at: number, bits: number) => {
    const copy = Buffer.from(c2.data);
    copy[at]! ^= bits;
    return copy;
  };
  const sealedFor = (first: number) => new KeyContext(a.key, new PacketIdSender(first));
  const bad: [string, Buffer, string][] = [
    ['the first datagram again', c1.data, 'peer.replay'],
    ['authentic with packet-id 0', sealOne(sealedFor(0), first, PEER), 'peer.replay'],
    ['a ciphertext bit flipped', flip(OVERHEAD + 3, 0x01), 'peer.auth'],
    ['a tag bit flipped', flip(8, 0x01), 'peer.auth'],
    ['a packet-id bit flipped', flip(5, 0x80), 'peer.auth'],
    ['key-id 2, which no slot holds', flip(0, 0x02), 'peer.noKey'],
    ['peer-id 17, which nobody has', flip(3, 0x10), 'iface.unknownPeer'],
    ['cut inside the tag', c2.data.subarray(0, 20), 'peer.malformed'],
    ['cut after the packet-id', c2.data.subarray(0, 8), 'peer.malformed'],
    ['cut inside the DATA_V2 header', c2.data.subarray(0, 3), 'iface.malformed'],
    ['empty', Buffer.alloc(0), 'iface.malformed'],
    ['DATA_V1', Buffer.concat([Buffer.from([0x30]), c2.data.subarray(1)]), 'iface.dataV1'],
    ['authentic, but not an IP packet', sealOne(sealedFor(1000), Buffer.from([0, 1, 2, 3]), PEER), 'peer.malformed'],
  ];
  for (const [what, data, counter] of bad) {
    const before = dropCounters(b.iface, PEER);
    wire.send(data, 'b');
    await until(() => sum(changed(before, dropCounters(b.iface, PEER))) > 0, `${what}: counted`);
    assert.deepEqual(changed(before, dropCounters(b.iface, PEER)), { [counter]: 1 }, what);
  }
  assert.deepEqual(b.tun.written.drain(), [], 'no bad datagram reached the TUN');

  // None of them moved the replay window: the held datagram opens, once.
  wire.pass(c2);
  assert.deepEqual(await soon(b.tun.written.next(), 'the held datagram'), second);
  const before = dropCounters(b.iface, PEER);
  wire.pass(c2);
  await until(() => b.iface.getPeer(PEER).drops.replay === before['peer.replay']! + 1, 'the repeat is counted');
  assert.deepEqual(b.tun.written.drain(), [], 'a replay is not written twice');
  assert.equal(b.iface.getPeer(PEER).vpnRxPackets, 2);
  assert.deepEqual(b.log.float, []);
});

test('control packets: other opcodes go up untouched with the sender, local port and the peer at that address; sendPacket sends raw bytes', async () => {
  const { net, a, b, wire } = p2pPair('AES-256-GCM', true);
  // P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7, key-id 0): session id, empty ACK array, message id.
  const hardReset = Buffer.from('38a1b2c3d4e5f60718000000000000', 'hex');
  const ack = Buffer.from('28a1b2c3d4e5f6071801000000010000', 'hex');

  // From the host a's peer is at, another port: that peer's. From elsewhere: nobody's.
  const next = () => soon(once(a.iface, 'packet-ntf'), 'a packet-ntf');
  let event = next();
  wire.host.openUdp(40000).sendTo(hardReset, { address: LINK.a, port: PORT });
  assert.deepEqual((await event)[0], {
    ifname: 'tun0',
    peerId: PEER,
    localPort: PORT,
    remote: { address: WIRE.address, port: 40000, family: 4, local: LINK.a, ifindex: 1 },
    data: hardReset,
  });
  event = next();
  net.host('10.0.0.77').openUdp(40001).sendTo(ack, { address: LINK.a, port: PORT });
  assert.deepEqual((await event)[0], {
    ifname: 'tun0',
    peerId: null,
    localPort: PORT,
    remote: { address: '10.0.0.77', port: 40001, family: 4, local: LINK.a, ifindex: 1 },
    data: ack,
  });
  assert.equal(sum(dropCounters(a.iface, PEER)), 0, 'a control packet is no drop');
  assert.deepEqual(a.tun.written.drain(), []);

  // P_CONTROL_HARD_RESET_SERVER_V2 back, through the peer's socket as it is.
  const response = Buffer.from('40f6e5d4c3b2a1090801a1b2c3d4e5f6070000000000', 'hex');
  a.iface.sendPacket(PEER, response);
  const caught = await wire.catch('the control packet a sent');
  assert.deepEqual(caught, { data: response, toward: 'b' });
  const atB = soon(once(b.iface, 'packet-ntf'), "b's packet-ntf");
  wire.pass(caught);
  assert.deepEqual((await atB)[0], {
    ifname: 'tun0',
    peerId: PEER,
    localPort: PORT,
    remote: { address: WIRE.address, port: WIRE.port, family: 4, local: LINK.b, ifindex: 1 },
    data: response,
  });
  assert.equal(a.iface.getPeer(PEER).vpnTxPackets, 0, 'a control packet is no VPN traffic');
  assert.throws(() => a.iface.sendPacket(PEER, Buffer.alloc(0)), {
    name: 'OvpnError',
    code: 'EINVAL',
    message: 'packet must be 1 to 65535 bytes',
  });
  assert.throws(() => a.iface.sendPacket(9, response), { code: 'ENOENT', message: 'cannot find peer with id 9' });
});

test('control flood: control packets from anyone are bounded by the queue and the rate, each one accounted for; data still flows', async () => {
  const { net, a, b } = p2pPair();
  const stranger = net.host('10.0.0.66').openUdp(6666);
  let handedUp = 0;
  b.iface.on('packet-ntf', () => handedUp++);
  const SENT = 3000;
  for (let n = 0; n < SENT; n++)
    stranger.sendTo(Buffer.from([0x38, n & 0xff, n >> 8]), { address: LINK.b, port: PORT });
  const accounted = () => handedUp + b.iface.info().drops.control + b.iface.info().controlQueue;
  await until(() => accounted() === SENT && b.iface.info().drops.control > 0, 'every control packet accounted for');
  const { controlQueue, drops } = b.iface.info();
  assert.ok(controlQueue <= 1024, `at most the queue's slots wait (${controlQueue})`);
  assert.ok(handedUp <= 256, `no more than the burst before time moves (${handedUp})`);
  assert.equal(totalDrops(drops), drops.control, 'counted as control drops only');

  const packet = ipv4Packet(VPN.a, VPN.b, 'data during the flood');
  a.tun.inject(packet);
  assert.deepEqual(await soon(b.tun.written.next(), 'data during the flood'), packet);

  // As time passes the queue drains at the rate, and nothing else is lost.
  const before = handedUp;
  net.clock.advance(1000);
  await until(() => handedUp > before, 'more handed up once tokens are earned');
  b.iface.destroy();
  assert.equal(b.iface.info().controlQueue, 0, 'a destroyed interface holds nothing');
});

test('key reuse: installing an encryption key this interface already used warns, naming the peers; a fresh key does not', async () => {
  const { server } = mpServer(2);
  const warnings: string[] = [];
  server.iface.on('warning', (e) => warnings.push(e.message));
  const [fresh] = keyPair('AES-256-GCM', 1);
  installKey(server.iface, 11, fresh, 'secondary');
  assert.deepEqual(warnings, []);
  // The same key again, for peer 12 and then for peer 11's other slot: its nonces would repeat.
  installKey(server.iface, 12, fresh, 'secondary');
  installKey(server.iface, 11, { ...fresh, keyId: 2 }, 'primary');
  assert.deepEqual(warnings, [
    'key-id 1 of peer 12 encrypts with a key already used by peer 11: its nonces repeat. Give every session a fresh key (head -c 72 /dev/urandom | base64 > new.key), or use a TLS control plane',
    'key-id 2 of peer 11 encrypts with a key already used by peer 11, peer 12: its nonces repeat. Give every session a fresh key (head -c 72 /dev/urandom | base64 > new.key), or use a TLS control plane',
  ]);
});

test('routing loop: our own outer packet to the peer, routed back into the TUN, is dropped and counted, and reported once', async () => {
  const { net, a, b } = p2pPair();
  const warnings: string[] = [];
  a.iface.on('warning', (e) => warnings.push(e.message));
  const udp = (dstPort: number, text: string) => {
    // A UDP header (ports, then length and checksum left as they are) in front of the text.
    const packet = ipv4Packet(LINK.a, LINK.b, `${'-'.repeat(8)}${text}`);
    packet.writeUInt16BE(PORT, 20);
    packet.writeUInt16BE(dstPort, 22);
    return packet;
  };
  const sentBefore = a.iface.getPeer(PEER).linkTxPackets;
  for (let n = 1; n <= 2; n++) {
    a.tun.inject(udp(PORT, `looping ${n}`));
    await until(() => a.iface.getPeer(PEER).drops.loop === n, `loop ${n} is counted`);
  }
  assert.equal(a.iface.getPeer(PEER).linkTxPackets, sentBefore, 'nothing was sealed and sent');
  assert.deepEqual(warnings, [
    "routing loop: packets to peer 1's own address 10.0.0.2 port 1194 are routed into tun0; dropped (drops.loop). Route that address outside the tunnel",
  ]);
  // The same host on another port is ordinary traffic.
  const dns = udp(53, 'not a loop');
  a.tun.inject(dns);
  assert.deepEqual(await soon(b.tun.written.next(), 'a packet to another port of the peer host'), dns);
  assert.equal(net.lost, 0);
});

test('device errors: a TUN set down or a socket refusing sends costs those packets, counted and reported once; the interface lives on', async () => {
  const { a, b } = p2pPair();
  const warnings: string[] = [];
  for (const s of [a, b]) s.iface.on('warning', (e) => warnings.push(`${s === a ? 'a' : 'b'}: ${e.message}`));
  const toB = (text: string) => ipv4Packet(VPN.a, VPN.b, text);

  // `ip link set tun0 down` on b: writes to its TUN fail with EIO.
  b.tun.failWrites('EIO');
  for (let n = 1; n <= 2; n++) {
    a.tun.inject(toB(`while down ${n}`));
    await until(() => b.iface.info().drops.io === n, `packet ${n} to a TUN that is down is counted`);
  }
  b.tun.failWrites(null);
  const after = toB('up again');
  a.tun.inject(after);
  assert.deepEqual(await soon(b.tun.written.next(), 'a packet once the TUN is up'), after);

  // a's socket refuses to send (the path's interface vanished: ENODEV).
  a.host.bound(PORT)!.failWrites('ENODEV');
  a.tun.inject(toB('into a dead path'));
  await until(() => a.iface.getPeer(PEER).drops.io === 1, 'the refused send is counted');
  a.host.bound(PORT)!.failWrites(null);
  const again = toB('path back');
  a.tun.inject(again);
  assert.deepEqual(await soon(b.tun.written.next(), 'a packet once the path is back'), again);

  assert.deepEqual(warnings, [
    'b: writing to tun0 failed (tun tun0: EIO): packets dropped, counted as io drops',
    'a: sending to peer 1 failed (udp port 1194: ENODEV): packets dropped, counted as io drops',
  ]);
  assert.equal(a.iface.closed || b.iface.closed, false, 'both interfaces live on');
});

// ---- multi-peer --------------------------------------------------------------------------------

test('MP: packets from the server TUN reach the client with that VPN address or route; the unroutable are counted; clients reach the server', async () => {
  const { server, clients } = mpServer(3);
  const [c11, c12, c13] = clients as [MpClient, MpClient, MpClient];
  const reaches = async (client: Side, packet: Buffer, what: string) =>
    assert.deepEqual(await soon(client.tun.written.next(), what), packet);

  // One batch for three peers, in the opposite order of their ids.
  const toEach = clients.map((c) => ipv4Packet(SERVER.vpn, c.vpn, `to peer ${c.id}`));
  for (const packet of [...toEach].reverse()) server.tun.inject(packet);
  for (const [i, c] of clients.entries()) await reaches(c, toEach[i]!, `peer ${c.id} gets the packet to ${c.vpn}`);

  server.tun.inject(ipv4Packet(SERVER.vpn, '5.5.5.77', 'to nobody'));
  await until(() => server.iface.info().drops.noRoute === 1, 'the unroutable packet is counted');

  // A route on peer 11, and kernel routes via peers' VPN addresses; the longest prefix wins.
  server.iface.addRoute(11, '10.1.0.0/16');
  server.host.setRoutes('tun0', [
    { family: 4, dst: ip('11.11.11.0'), prefixLen: 24, gateway: ip(c13.vpn) },
    { family: 4, dst: ip('10.1.2.0'), prefixLen: 24, gateway: ip(c12.vpn) },
  ]);
  const routed: [MpClient, string][] = [
    [c11, '10.1.9.9'],
    [c12, '10.1.2.3'],
    [c13, '11.11.11.11'],
  ];
  for (const [client, destination] of routed) {
    const packet = ipv4Packet(SERVER.vpn, destination, `to ${destination}`);
    server.tun.inject(packet);
    await reaches(client, packet, `${destination} goes to peer ${client.id}`);
  }

  for (const c of clients) {
    const packet = ipv4Packet(c.vpn, SERVER.vpn, `from peer ${c.id}`);
    c.tun.inject(packet);
    await reaches(server, packet, `the server gets peer ${c.id}'s packet`);
  }

  for (const s of [server, ...clients]) assert.deepEqual(s.tun.written.drain(), [], 'nothing went astray');
  for (const c of clients) {
    const peer = server.iface.getPeer(c.id);
    assert.deepEqual([peer.vpnTxPackets, peer.vpnRxPackets], [2, 1], `peer ${c.id}`);
  }
  const drops = server.iface.info().drops;
  assert.deepEqual([drops.noRoute, totalDrops(drops)], [1, 1], 'the unroutable packet, and nothing else');
});

test('source check (MP): a client may send only from its VPN address and the routes behind it; each other source counts badSource', async () => {
  const { server, clients } = mpServer(2);
  const [c11, c12] = clients as [MpClient, MpClient];
  server.iface.addRoute(12, '10.2.0.0/16');
  server.host.setRoutes('tun0', [{ family: 4, dst: ip('11.11.11.0'), prefixLen: 24, gateway: ip(c12.vpn) }]);
  const sends = (source: string, text: string) => {
    const packet = ipv4Packet(source, SERVER.vpn, text);
    c12.tun.inject(packet);
    return packet;
  };

  // Refused: another client's address, an address nobody routes to peer 12, the server's own.
  let refused = 0;
  for (const source of [c11.vpn, '1.2.3.4', '10.3.0.1', SERVER.vpn]) {
    sends(source, `as ${source}`);
    refused++;
    await until(() => server.iface.getPeer(12).drops.badSource === refused, `the packet from ${source} is refused`);
  }
  // Accepted: its own address, a peer route, a kernel route via its VPN address.
  for (const source of [c12.vpn, '10.2.3.4', '11.11.11.5']) {
    const packet = sends(source, `from ${source}`);
    assert.deepEqual(await soon(server.tun.written.next(), `the packet from ${source}`), packet);
  }
  assert.deepEqual(server.tun.written.drain(), [], 'no refused packet reached the TUN');
  assert.equal(server.iface.getPeer(12).vpnRxPackets, 3);
  assert.equal(server.iface.getPeer(11).vpnRxPackets, 0, 'nothing was taken for peer 11');
  assert.equal(totalDrops(server.iface.getPeer(12).drops), 4);
});

test('source check (P2P): the one peer may send from any address', async () => {
  const { a, b } = p2pPair();
  const packet = ipv4Packet('9.9.9.9', VPN.b, 'from anywhere');
  a.tun.inject(packet);
  assert.deepEqual(await soon(b.tun.written.next(), 'the packet from 9.9.9.9'), packet);
  assert.equal(b.iface.getPeer(PEER).drops.badSource, 0);
});

test('by address: the undefined peer-id finds the peer at that exact address and port; control packets find it at its host, after a float too', async () => {
  const { net, server } = mpServer(1);
  // Two raw clients behind one host (a NAT): peers 40 and 41, on ports 40040 and 40041.
  const nat = net.host('10.0.1.70');
  const raws = [40, 41].map((id) => {
    const bind = nat.openUdp(40000 + id);
    const [serverKey, rawKey] = keyPair('AES-256-GCM');
    server.iface.newPeer({
      id,
      localPort: PORT,
      remoteIpv4: '10.0.1.70',
      remotePort: 40000 + id,
      vpnIpv4: `5.5.5.${id}`,
    });
    installKey(server.iface, id, serverKey);
    return { id, bind, seal: new KeyContext(rawKey) };
  });
  const [r40, r41] = raws as [(typeof raws)[0], (typeof raws)[0]];
  const toServer = { address: SERVER.link, port: PORT };

  const fromR41 = ipv4Packet('5.5.5.41', SERVER.vpn, 'no peer-id yet');
  r41.bind.sendTo(sealOne(r41.seal, fromR41, PEER_ID_UNDEF), toServer);
  assert.deepEqual(await soon(server.tun.written.next(), 'the packet with the undefined peer-id'), fromR41);
  assert.equal(server.iface.getPeer(41).vpnRxPackets, 1);
  // The same from a port where no peer is: nobody to give it to.
  const stray = nat.openUdp(40099);
  stray.sendTo(sealOne(r41.seal, ipv4Packet('5.5.5.41', SERVER.vpn, 'stray'), PEER_ID_UNDEF), toServer);
  await until(() => server.iface.info().drops.unknownPeer === 1, 'the stray packet is unknownPeer');

  const controlFrom = async (bind: MemoryBind, what: string) => {
    const event = soon(once(server.iface, 'packet-ntf'), what);
    bind.sendTo(Buffer.from('38a1b2c3d4e5f60718000000000000', 'hex'), toServer);
    return (await event)[0].peerId as number | null;
  };
  assert.equal(await controlFrom(r41.bind, 'control from peer 41'), 41, 'exact address and port');
  assert.equal(await controlFrom(r40.bind, 'control from peer 40'), 40);
  assert.equal(await controlFrom(stray, 'control from another port of the host'), 40, 'the host, first peer there');

  // Peer 40 floats away: its old address is no longer its, its new one is.
  const moved = net.host('10.0.1.71').openUdp(40040);
  const fromR40 = ipv4Packet('5.5.5.40', SERVER.vpn, 'from a new address');
  moved.sendTo(sealOne(r40.seal, fromR40, 40), toServer);
  assert.deepEqual(await soon(server.tun.written.next(), 'the floated packet'), fromR40);
  assert.equal(await controlFrom(moved, 'control from the new address'), 40);
  assert.equal(await controlFrom(stray, 'control from the old host'), 41, 'peer 41 is all that is left there');
  server.iface.delPeer(41);
  assert.equal(await controlFrom(stray, 'control after the delete'), null);
});

test('multihome: the server answers each client from the address that client talks to, and follows when it changes', async () => {
  const { net, server, clients } = mpServer(2);
  const [c11, c12] = clients as [MpClient, MpClient];
  const second = '10.0.1.100';
  server.host.setAddress(second, true);
  c12.iface.setPeer({ id: c12.id, remoteIpv4: second, remotePort: PORT });
  // A third client made of a test's own socket, to see where replies come from.
  const raw = net.host('10.0.1.50').openUdp(40000);
  const [serverKey, rawKey] = keyPair('AES-256-GCM');
  server.iface.newPeer({ id: 20, localPort: PORT, remoteIpv4: '10.0.1.50', remotePort: 40000, vpnIpv4: '5.5.5.50' });
  installKey(server.iface, 20, serverKey);
  const rawSeal = new KeyContext(rawKey);
  const rawOpen = new KeyContext(rawKey);

  const toServer = async (send: () => void, packet: Buffer, what: string) => {
    send();
    assert.deepEqual(await soon(server.tun.written.next(), what), packet);
  };
  for (const c of [c11, c12]) {
    const packet = ipv4Packet(c.vpn, SERVER.vpn, `hello from ${c.id}`);
    await toServer(() => c.tun.inject(packet), packet, `peer ${c.id} speaks first`);
  }
  const rawSays = async (to: string, text: string) => {
    const packet = ipv4Packet('5.5.5.50', SERVER.vpn, text);
    await toServer(() => raw.sendTo(sealOne(rawSeal, packet, 20), { address: to, port: PORT }), packet, text);
  };
  await rawSays(second, 'raw client to the second address');
  assert.deepEqual(
    [11, 12, 20].map((id) => server.iface.getPeer(id).localIpv4),
    [SERVER.link, second, second],
    'each peer is answered from the address it reached',
  );

  for (const c of [c11, c12]) {
    const packet = ipv4Packet(SERVER.vpn, c.vpn, `reply to ${c.id}`);
    server.tun.inject(packet);
    assert.deepEqual(await soon(c.tun.written.next(), `peer ${c.id} gets its reply`), packet);
    // A reply from the other address would have been a float at the client.
    assert.deepEqual(c.log.float, [], `peer ${c.id} saw no move`);
    assert.equal(c.iface.getPeer(c.id).remoteIpv4, c === c11 ? SERVER.link : second);
  }
  const rawGets = async (what: string) => {
    const packet = ipv4Packet(SERVER.vpn, '5.5.5.50', what);
    server.tun.inject(packet);
    const { data, from } = await soon(raw.next(), what);
    assert.deepEqual(openOne(rawOpen, data), packet);
    return from;
  };
  assert.deepEqual(await rawGets('reply to the raw client'), {
    address: second,
    port: PORT,
    family: 4,
    local: '10.0.1.50',
    ifindex: 1,
  });

  await rawSays(SERVER.link, 'raw client to the first address now');
  assert.equal((await rawGets('reply after the change')).address, SERVER.link);
  assert.deepEqual(server.log.float, [], 'a new local address alone is no float');
});

test('local ports: a peer only receives on its own port (its valid packet on another counts unknownPeer); a port closes with its last peer', async () => {
  const { net, server, clients } = mpServer(1);
  const [c11] = clients as [MpClient];
  // Peer 30 uses its own server port; its sealed packets are valid, but only on that port.
  const otherPort = PORT + 1;
  const raw = net.host('10.0.1.60').openUdp(40001);
  const [serverKey, rawKey] = keyPair('AES-256-GCM');
  server.iface.newPeer({
    id: 30,
    localPort: otherPort,
    remoteIpv4: '10.0.1.60',
    remotePort: 40001,
    vpnIpv4: '5.5.5.60',
  });
  installKey(server.iface, 30, serverKey);
  const rawSeal = new KeyContext(rawKey);
  const packet = (text: string) => ipv4Packet('5.5.5.60', SERVER.vpn, text);

  raw.sendTo(sealOne(rawSeal, packet('on the wrong port'), 30), { address: SERVER.link, port: PORT });
  await until(() => server.iface.info().drops.unknownPeer === 1, 'the packet on the shared port is refused');
  const right = packet('on its own port');
  raw.sendTo(sealOne(rawSeal, right, 30), { address: SERVER.link, port: otherPort });
  assert.deepEqual(await soon(server.tun.written.next(), 'the packet on its own port'), right);
  assert.equal(server.iface.getPeer(30).vpnRxPackets, 1);
  assert.equal(server.iface.getPeer(c11.id).vpnRxPackets, 0);
  assert.equal(totalDrops(server.iface.info().drops), 1);

  // A port's socket closes with the last peer on it, not before.
  server.iface.delPeer(30);
  assert.equal(server.host.bound(otherPort), undefined, 'the port of the deleted peer is closed');
  assert.notEqual(server.host.bound(PORT), undefined, 'the shared port stays for peer 11');
  server.iface.delPeer(c11.id);
  assert.equal(server.host.bound(PORT), undefined, 'closed with its last peer');
});

test('listen: a UDP port with no peer hands up control packets from anyone; sendControl answers them; it closes with its last user', async () => {
  const net = new MemoryNetwork();
  const server = side(net, LINK.a, 'MP');
  assert.equal(await server.iface.listen('udp', PORT), PORT);
  assert.notEqual(server.host.bound(PORT), undefined, 'the port is open with no peer');
  assert.deepEqual(server.iface.getPeers(), []);
  const stranger = net.host('10.0.0.77').openUdp(40001);
  const hardReset = Buffer.from('38a1b2c3d4e5f60718000000000000', 'hex');
  const event = soon(once(server.iface, 'packet-ntf'), 'the packet-ntf');
  stranger.sendTo(hardReset, { address: LINK.a, port: PORT });
  const [e] = (await event) as [PacketEvent];
  assert.deepEqual(
    [e.peerId, e.localPort, e.remote.address, e.remote.port, e.data],
    [null, PORT, '10.0.0.77', 40001, hardReset],
  );
  // The answer leaves from the listening port to the sender, with no peer made for it.
  const response = Buffer.from('40f6e5d4c3b2a1090801a1b2c3d4e5f6070000000000', 'hex');
  server.iface.sendControl('udp', PORT, e.remote, response);
  const got = await soon(stranger.next(), 'the answer');
  assert.deepEqual([got.data, got.from.address, got.from.port], [response, LINK.a, PORT]);
  assert.deepEqual(server.iface.getPeers(), []);
  assert.equal(totalDrops(server.iface.info().drops), 0);

  assert.throws(() => server.iface.sendControl('udp', PORT + 1, e.remote, response), {
    code: 'ENOENT',
    message: `no UDP socket on local port ${PORT + 1}: listen on it first`,
  });
  assert.throws(() => server.iface.sendControl('udp', PORT, e.remote, Buffer.alloc(0)), { code: 'EINVAL' });
  // A peer added on the port shares it: the socket stays until both have let go.
  server.iface.newPeer({ id: 1, localPort: PORT, remoteIpv4: '10.0.0.77', remotePort: 40001, vpnIpv4: '5.5.5.2' });
  server.iface.unlisten('udp', PORT);
  assert.notEqual(server.host.bound(PORT), undefined, 'the peer still uses the port');
  server.iface.delPeer(1);
  assert.equal(server.host.bound(PORT), undefined, 'closed with its last user');
  server.iface.destroy();
});

test('TUN removal: `ip link del` ends the interface: every peer deleted with TEARDOWN, then closed', async () => {
  const { net, server, clients } = mpServer(3);
  const order: string[] = [];
  server.iface.on('peer-del-ntf', (e) => order.push(`del ${e.peerId}`));
  server.iface.on('closed', () => order.push('closed'));
  const closed = soon(once(server.iface, 'closed'), 'the closed event');
  server.tun.remove();
  assert.deepEqual((await closed)[0], { ifname: 'tun0', reason: 'interface tun0 was deleted' });
  assert.deepEqual(
    server.log.del,
    clients.map((c) => ({ ifname: 'tun0', peerId: c.id, reason: 'TEARDOWN' })),
  );
  assert.deepEqual(order, ['del 11', 'del 12', 'del 13', 'closed']);
  assert.equal(server.iface.closed, true);
  assert.throws(() => server.iface.getPeer(11), {
    code: 'ENODEV',
    message: 'interface is gone: interface tun0 was deleted',
  });

  // Its socket went with it, and the name is free again.
  const lost = net.lost;
  clients[0]!.tun.inject(ipv4Packet(clients[0]!.vpn, SERVER.vpn, 'to a server that is gone'));
  await until(() => net.lost === lost + 1, "the client's packet finds no socket");
  const again = OvpnInterface.create({ name: 'tun0', mode: 'MP', edges: server.host.edges });
  assert.equal(again.info().peers, 0);
  again.destroy();
});

// ---- the fakes ---------------------------------------------------------------------------------

test('fakes: the clock runs due timers in deadline order inside advance(), and only there', () => {
  const net = new MemoryNetwork();
  const ran: string[] = [];
  const fast = net.clock.every(250, () => ran.push(`fast@${net.clock.now()}`));
  net.clock.every(400, () => ran.push(`slow@${net.clock.now()}`));
  net.clock.advance(249);
  assert.deepEqual(ran, []);
  net.clock.advance(551);
  assert.deepEqual(ran, ['fast@250', 'slow@400', 'fast@500', 'fast@750', 'slow@800']);
  assert.equal(net.clock.now(), 800);
  fast.cancel();
  net.clock.advance(400);
  assert.deepEqual(ran.slice(5), ['slow@1200']);
});

test('fakes: a datagram arrives with the endpoint the kernel would fill; nobody listening counts as lost', async () => {
  const net = new MemoryNetwork();
  const A = net.host('10.0.0.1');
  const B = net.host('10.0.0.2', '10.0.0.22');
  const sender = A.openUdp(0);
  const receiver = B.openUdp(7000);
  sender.sendTo(Buffer.from('hi'), { address: '10.0.0.22', port: 7000 });
  const got = await soon(receiver.next(), 'datagram to the second address');
  assert.deepEqual(got.data, Buffer.from('hi'));
  assert.deepEqual(got.from, { address: '10.0.0.1', port: sender.port, family: 4, local: '10.0.0.22', ifindex: 1 });
  sender.sendTo(Buffer.from('x'), { address: '10.0.0.2', port: 7001 });
  sender.sendTo(Buffer.from('x'), { address: '10.0.0.3', port: 7000 });
  assert.equal(net.lost, 2);
});

test('fakes: reads of a test socket waiting at the same time each get a datagram, in order', async () => {
  const net = new MemoryNetwork();
  const sender = net.host('10.0.0.1').openUdp(6000);
  const receiver = net.host('10.0.0.2').openUdp(7000);
  const both = Promise.all([receiver.next(), receiver.next()]);
  for (const text of ['one', 'two']) sender.sendTo(Buffer.from(text), { address: '10.0.0.2', port: 7000 });
  const got = await soon(both, 'both reads');
  assert.deepEqual(
    got.map((d) => d.data.toString()),
    ['one', 'two'],
  );
});

test('fakes: a pinned source the host no longer has is forgotten in the slot and the host picks one, as the shim does', async () => {
  const net = new MemoryNetwork();
  const A = net.host('10.0.0.1', '10.0.0.11');
  const receiver = net.host('10.0.0.2').openUdp(7000);
  const sender = A.openUdp(6000);
  const batch = newBatch(1);
  const endpoints = newEndpoints(1);
  pushPacket(batch, Buffer.from('pinned'));
  writeEndpoint(endpoints, 0, { address: '10.0.0.2', port: 7000, local: '10.0.0.11' });
  assert.equal(sender.send(batch, endpoints), 1);
  assert.equal((await soon(receiver.next(), 'sent from the pinned address')).from.address, '10.0.0.11');
  A.setAddress('10.0.0.11', false);
  assert.equal(sender.send(batch, endpoints), 1);
  assert.equal((await soon(receiver.next(), 'sent from the address left')).from.address, '10.0.0.1');
  assert.deepEqual(readEndpoint(endpoints, 0), { address: '10.0.0.2', port: 7000, family: 4, ifindex: 0 });
});

test('fakes: routes set before the watcher first reports are what it reports, not the empty list it started with', async () => {
  const net = new MemoryNetwork();
  const host = net.host('10.0.0.1');
  const seen: number[] = [];
  host.edges.watchRoutes(
    'tun0',
    (routes) => seen.push(routes.length),
    (error) => assert.fail(error),
  );
  host.setRoutes('tun0', [{ family: 4, dst: ip('11.11.11.0'), prefixLen: 24, gateway: ip('5.5.5.2') }]);
  await turn();
  assert.deepEqual(seen, [1, 1]);
});
