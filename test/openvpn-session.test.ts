/**
 * Our control session against itself, without root: TLS (node:tls) over the reliability layer on
 * a manual clock, through a channel that can lose packets, then the whole P2P TLS tunnel on two
 * OvpnInterfaces joined by the in-memory network, carrying a packet through the keys it
 * negotiated. The same code against a real openvpn: test/openvpn-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { OvpnInterface } from '../src/device/ovpn-interface.js';
import { ManualClock, MemoryNetwork } from '../src/edge/memory.js';
import type { ConnectPlan } from '../src/openvpn/options.js';
import { P2pTlsTunnel } from '../src/openvpn/p2p-tunnel.js';
import { netmaskToPrefix, parsePushed } from '../src/openvpn/pushed.js';
import { ReconnectingClient } from '../src/openvpn/reconnect.js';
import {
  ControlSession,
  type Established,
  nextKeyId,
  protocolFlags,
  type SessionOptions,
  tlsLimits,
} from '../src/openvpn/session.js';
import { TlsCrypt } from '../src/openvpn/tls-wrap.js';
import { ipv4Packet } from './helpers/packets.js';
import { makePki, type Pki } from './helpers/pki.js';
import { missing } from './helpers/tools.js';

// The certificates are made with the openssl CLI; no root needed.
const skip = missing(['openssl'], false);

let pki: Pki;
let otherPki: Pki;
before(() => {
  if (skip) return;
  pki = makePki();
  otherPki = makePki();
});
after(() => {
  pki?.remove();
  otherPki?.remove();
});

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface PairOptions {
  serverCiphers?: string[];
  clientCiphers?: string[];
  clientExporter?: boolean;
  /** Whether to lose the n-th packet (from 0) toward 'client' or 'server'. */
  lose?: (toward: 'client' | 'server', n: number) => boolean;
  clientCreds?: { ca: string; cert: string; key: string };
  wrapKey?: Buffer;
  push?: { peerId: number; options: string[] };
  serverRemoteCertTls?: 'client';
  /** More session options for one side (verify-x509-name, TLS limits). */
  serverExtra?: Partial<SessionOptions>;
  clientExtra?: Partial<SessionOptions>;
}

function pair(options: PairOptions = {}) {
  const clock = new ManualClock();
  const sent = { client: 0, server: 0 };
  const sessions: { server?: ControlSession; client?: ControlSession } = {};
  const link =
    (toward: 'client' | 'server'): SessionOptions['send'] =>
    (packet) => {
      if (options.lose?.(toward, sent[toward]++)) return;
      setImmediate(() => sessions[toward]!.receive(packet));
    };
  const common = { clock };
  const server = new ControlSession({
    ...common,
    role: 'server',
    send: link('client'),
    tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
    ciphers: options.serverCiphers ?? ['AES-256-GCM'],
    ...(options.wrapKey === undefined ? {} : { wrap: new TlsCrypt(options.wrapKey, true) }),
    ...(options.push === undefined ? {} : { push: options.push }),
    ...(options.serverRemoteCertTls === undefined ? {} : { remoteCertTls: options.serverRemoteCertTls }),
    ...options.serverExtra,
  });
  const client = new ControlSession({
    ...common,
    role: 'client',
    send: link('server'),
    tls: options.clientCreds ?? { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    ciphers: options.clientCiphers ?? ['AES-256-GCM'],
    exporter: options.clientExporter ?? true,
    ...(options.wrapKey === undefined ? {} : { wrap: new TlsCrypt(options.wrapKey, false) }),
    ...(options.push === undefined ? {} : { pull: true }),
    ...options.clientExtra,
  });
  sessions.server = server;
  sessions.client = client;
  return { clock, server, client, sent };
}

/** Lets the event loop and the manual clock run (100 ms of clock per turn) until `promise` settles. */
async function drive<T>(clock: ManualClock, promise: Promise<T>, maxClockMs = 120_000): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  for (let t = 0; !settled && t < maxClockMs; t += 100) {
    for (let i = 0; i < 5 && !settled; i++) await turn();
    clock.advance(100);
  }
  if (!settled) assert.fail(`nothing within ${maxClockMs} ms of clock`);
  return watched;
}

const established = (s: ControlSession) => once(s, 'established').then(([e]) => e as Established);

function assertMirrored(server: Established, client: Established): void {
  assert.deepEqual(server.keys.encryptDir, client.keys.decryptDir);
  assert.deepEqual(server.keys.decryptDir, client.keys.encryptDir);
  assert.notDeepEqual(server.keys.encryptDir.cipherKey, server.keys.decryptDir.cipherKey);
  assert.equal(server.peerId, client.peerId);
  assert.equal(server.cipher, client.cipher);
  assert.equal(server.keyMethod, client.keyMethod);
}

test("openvpn session: client and server agree on keys, peer-id and the server's preferred common cipher", {
  skip,
}, async () => {
  const { clock, server, client } = pair({
    serverCiphers: ['CHACHA20-POLY1305', 'AES-256-GCM'],
    clientCiphers: ['AES-256-GCM', 'CHACHA20-POLY1305'],
  });
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  assert.equal(s.cipher, 'CHACHA20-POLY1305');
  assert.equal(s.keyMethod, 'exporter');
  assert.equal(s.commonName, 'client1');
  assert.equal(c.commonName, 'server');
  assert.ok(s.peerId >= 0 && s.peerId < 1 << 24);
  assert.equal(server.reliableStats.retransmits + client.reliableStats.retransmits, 0);
  server.close();
  client.close();
});

test('openvpn session: lost packets both ways are retransmitted and the handshake still completes', {
  skip,
}, async () => {
  const { clock, server, client } = pair({
    lose: (toward, n) => (toward === 'client' ? n === 0 || n === 2 : n === 1 || n === 3),
  });
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  assert.ok(server.reliableStats.retransmits > 0, JSON.stringify(server.reliableStats));
  assert.ok(client.reliableStats.retransmits > 0, JSON.stringify(client.reliableStats));
  server.close();
  client.close();
});

test('openvpn session: a peer that does not announce the exporter gets PRF keys, the same on both ends', {
  skip,
}, async () => {
  const { clock, server, client } = pair({ clientExporter: false });
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  assert.equal(s.keyMethod, 'prf');
  assert.equal(s.peerId, 0x76706e, "without the exporter the P2P peer-id is 'vpn'");
  server.close();
  client.close();
});

test('openvpn session: tls-crypt on both ends carries the handshake', { skip }, async () => {
  const { clock, server, client } = pair({ wrapKey: Buffer.alloc(256, 7) });
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  assert.equal(server.stats.unauthenticated + client.stats.unauthenticated, 0);
  server.close();
  client.close();
});

test("openvpn session: a pull client takes peer-id, cipher and key derivation from the server's PUSH_REPLY", {
  skip,
}, async () => {
  const { clock, server, client } = pair({
    serverCiphers: ['AES-128-GCM', 'CHACHA20-POLY1305'],
    clientCiphers: ['CHACHA20-POLY1305', 'AES-128-GCM'],
    push: {
      peerId: 4242,
      options: ['topology subnet', 'ifconfig 10.8.0.6 255.255.255.0', 'ping 10', 'ping-restart 60'],
    },
  });
  const pushed = once(server, 'pushed').then(([text]) => text as string);
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  assert.equal(s.peerId, 4242);
  assert.equal(s.cipher, 'AES-128-GCM', "the server's preference");
  assert.equal(
    await pushed,
    'PUSH_REPLY,topology subnet,ifconfig 10.8.0.6 255.255.255.0,ping 10,ping-restart 60,peer-id 4242,cipher AES-128-GCM,protocol-flags cc-exit tls-ekm',
  );
  assert.deepEqual(parsePushed(c.pushed!), {
    topology: 'subnet',
    ifconfig: { local: '10.8.0.6', prefixLength: 24 },
    routes: [],
    routesIpv6: [],
    ping: 10,
    pingRestart: 60,
    other: ['peer-id 4242', 'cipher AES-128-GCM', 'protocol-flags cc-exit tls-ekm'],
  });
  // The pull client announced REQUEST_PUSH, IV_NCP and cc-exit, not P2P negotiation.
  assert.equal(s.peerInfo.get('IV_NCP'), '2');
  assert.equal(Number(s.peerInfo.get('IV_PROTO')) & 0xa4, 0x84);
  // explicit-exit-notify: the client's goodbye is the EXIT control message, acknowledged.
  const exit = once(server, 'message').then(([text]) => text as string);
  assert.equal(client.sendExit(), true);
  assert.equal(await drive(clock, exit), 'EXIT');
  await drive(
    clock,
    (async () => {
      while (!client.settled) await turn();
    })(),
  );
  server.close();
  client.close();
});

test('openvpn pushed: net30 ifconfig, routes, and masks that are not prefixes', () => {
  assert.deepEqual(parsePushed(['ifconfig 10.8.0.6 10.8.0.5', 'route 192.168.1.0 255.255.255.0', 'route 10.9.0.1']), {
    ifconfig: { local: '10.8.0.6', remote: '10.8.0.5' },
    routes: [
      { network: '192.168.1.0', netmask: '255.255.255.0' },
      { network: '10.9.0.1', netmask: '255.255.255.255' },
    ],
    routesIpv6: [],
    other: [],
  });
  assert.equal(netmaskToPrefix('255.255.255.252'), 30);
  assert.equal(netmaskToPrefix('0.0.0.0'), 0);
  assert.equal(netmaskToPrefix('255.0.255.0'), undefined);
});

test('openvpn session: renegotiation from either end yields fresh mirrored keys under key-ids 1, 2, ... with the same cipher and peer-id', {
  skip,
}, async () => {
  const { clock, server, client } = pair({
    serverCiphers: ['CHACHA20-POLY1305'],
    clientCiphers: ['CHACHA20-POLY1305'],
  });
  server.start();
  client.start();
  const [s0] = await drive(clock, Promise.all([established(server), established(client)]));
  const seen = [s0.keys.encryptDir.cipherKey];
  for (const [keyId, initiator] of [
    [1, client],
    [2, server],
    [3, client],
  ] as const) {
    const up = Promise.all([established(server), established(client)]);
    const active = Promise.all([once(server, 'active'), once(client, 'active')]);
    initiator.rekey();
    const [s, c] = await drive(clock, up);
    assertMirrored(s, c);
    assert.equal(s.keyId, keyId);
    assert.equal(s.cipher, 'CHACHA20-POLY1305');
    assert.equal(s.peerId, s0.peerId);
    assert.ok(!seen.some((k) => Buffer.from(k).equals(s.keys.encryptDir.cipherKey)), 'a fresh key');
    seen.push(s.keys.encryptDir.cipherKey);
    assert.deepEqual(await drive(clock, active), [[keyId], [keyId]]);
  }
  assert.equal(server.stats.foreign + client.stats.foreign, 0);
  server.close();
  client.close();
});

test('openvpn session: pushed protocol options follow what the client announced, as OpenVPN 2.6 pushes them', () => {
  assert.deepEqual(protocolFlags(true, true), ['protocol-flags cc-exit tls-ekm']);
  assert.deepEqual(protocolFlags(true, false), ['protocol-flags cc-exit']);
  assert.deepEqual(protocolFlags(false, true), ['key-derivation tls-ekm']);
  assert.deepEqual(protocolFlags(false, false), []);
});

test('openvpn session: key-ids go 1 to 7 and around, never back to 0', () => {
  assert.deepEqual([0, 1, 6, 7].map(nextKeyId), [1, 2, 7, 1]);
});

test('openvpn session: no common cipher is a clear error on both ends', {
  skip,
}, async () => {
  const { clock, server, client } = pair({ serverCiphers: ['AES-128-GCM'], clientCiphers: ['CHACHA20-POLY1305'] });
  server.start();
  client.start();
  const serverError = once(server, 'error').then(([e]) => e as Error);
  const clientError = once(client, 'error').then(([e]) => e as Error);
  assert.match(
    (await drive(clock, serverError)).message,
    /no common data cipher: ours AES-128-GCM, the peer's CHACHA20-POLY1305/,
  );
  // The server still sends its key method 2 message, so the client learns the server's list too.
  assert.match(
    (await drive(clock, clientError)).message,
    /no common data cipher: ours CHACHA20-POLY1305, the peer's AES-128-GCM/,
  );
});

test('openvpn session: a client certificate from another CA is refused', { skip }, async () => {
  const { clock, server, client } = pair({
    clientCreds: { ca: pki.ca, cert: otherPki.clientCert, key: otherPki.clientKey },
  });
  server.start();
  client.start();
  const serverError = once(server, 'error').then(([e]) => e as Error);
  assert.match((await drive(clock, serverError)).message, /peer certificate refused: .*does not lead to our CA/);
  client.close();
});

test('openvpn session: an expired client certificate is refused', { skip }, async () => {
  const { clock, server, client } = pair({
    clientCreds: {
      ca: pki.ca,
      cert: readFileSync(pki.files.expiredCert, 'utf8'),
      key: readFileSync(pki.files.expiredKey, 'utf8'),
    },
  });
  server.start();
  client.start();
  const serverError = once(server, 'error').then(([e]) => e as Error);
  assert.match((await drive(clock, serverError)).message, /CN=expired-client is outside its validity dates/);
  client.close();
});

test("openvpn session: remote-cert-tls client refuses a peer whose certificate is a server's", { skip }, async () => {
  const { clock, server, client } = pair({
    serverRemoteCertTls: 'client',
    clientCreds: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
  });
  server.start();
  client.start();
  const serverError = once(server, 'error').then(([e]) => e as Error);
  assert.match(
    (await drive(clock, serverError)).message,
    /lacks the extended key usage TLS Web Client Authentication \(remote-cert-tls client\)/,
  );
  client.close();
});

test('openvpn session: remote-cert-tls client accepts a client certificate', { skip }, async () => {
  const { clock, server, client } = pair({ serverRemoteCertTls: 'client' });
  server.start();
  client.start();
  const [s, c] = await drive(clock, Promise.all([established(server), established(client)]));
  assertMirrored(s, c);
  server.close();
  client.close();
});

test('openvpn session: verify-x509-name accepts the CN by name, prefix or whole subject, and refuses another', {
  skip,
}, async () => {
  for (const rule of [
    { name: 'server', type: 'name' },
    { name: 'serv', type: 'name-prefix' },
    { name: 'CN=server', type: 'subject' },
  ] as const) {
    const { clock, server, client } = pair({ clientExtra: { verifyX509Name: rule, remoteCertTls: 'server' } });
    server.start();
    client.start();
    await drive(clock, Promise.all([established(server), established(client)]));
    server.close();
    client.close();
  }
  const { clock, server, client } = pair({ clientExtra: { verifyX509Name: { name: 'vpn', type: 'name-prefix' } } });
  server.start();
  client.start();
  const clientError = once(client, 'error').then(([e]) => e as Error);
  assert.equal(
    (await drive(clock, clientError)).message,
    'peer certificate refused: common name "server" does not match verify-x509-name vpn name-prefix',
  );
  server.close();
  client.close();
});

test('openvpn session: tls-version-min 1.3 and tls-ciphersuites reach node:tls: the same suite connects, disjoint ones do not', {
  skip,
}, async () => {
  const tls13 = (suite: string): Partial<SessionOptions> => ({ tlsVersionMin: '1.3', tlsCiphersuites: suite });
  const ok = pair({ serverExtra: tls13('TLS_AES_128_GCM_SHA256'), clientExtra: tls13('TLS_AES_128_GCM_SHA256') });
  ok.server.start();
  ok.client.start();
  await drive(ok.clock, Promise.all([established(ok.server), established(ok.client)]));
  ok.server.close();
  ok.client.close();
  const bad = pair({
    serverExtra: tls13('TLS_AES_128_GCM_SHA256'),
    clientExtra: tls13('TLS_CHACHA20_POLY1305_SHA256'),
  });
  bad.server.start();
  bad.client.start();
  const serverError = once(bad.server, 'error').then(([e]) => e as Error);
  assert.match((await drive(bad.clock, serverError)).message, /no shared cipher|NO_SHARED_CIPHER/i);
  bad.server.close();
  bad.client.close();
});

test('openvpn session: tls-cipher without tls-ciphersuites keeps the TLS 1.3 defaults; both lists go in one node string', () => {
  const limits = tlsLimits({ tlsCipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
  assert.match(limits.ciphers ?? '', /^TLS_[^:]+(:TLS_[^:]+)*:ECDHE-RSA-AES256-GCM-SHA384$/);
  assert.deepEqual(tlsLimits({ tlsVersionMin: '1.3', tlsCiphersuites: 'TLS_AES_256_GCM_SHA384', tlsCipher: '' }), {
    minVersion: 'TLSv1.3',
    ciphers: 'TLS_AES_256_GCM_SHA384',
  });
  assert.deepEqual(tlsLimits({}), {});
});

test('openvpn session: P2P TLS tunnel on two in-memory interfaces installs the keys, carries packets both ways, and renegotiates on its timer', {
  skip,
}, async () => {
  const net = new MemoryNetwork();
  const hosts = { a: net.host('10.0.0.1'), b: net.host('10.0.0.2') };
  const ifaces = {
    a: OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hosts.a.edges }),
    b: OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hosts.b.edges }),
  };
  const common = {
    localPort: 1194,
    remotePort: 1194,
    clock: net.clock,
    ciphers: ['AES-256-GCM'],
    renegotiateSeconds: 60,
  };
  const server = new P2pTlsTunnel({
    ...common,
    role: 'server',
    iface: ifaces.a,
    remoteIpv4: '10.0.0.2',
    tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
  });
  const client = new P2pTlsTunnel({
    ...common,
    role: 'client',
    iface: ifaces.b,
    remoteIpv4: '10.0.0.1',
    tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
  });
  try {
    const up = Promise.all([once(server, 'established'), once(client, 'established')]);
    server.start();
    client.start();
    const [[s]] = (await drive(net.clock, up)) as [[Established], [Established]];
    for (const iface of Object.values(ifaces)) {
      assert.deepEqual(iface.getKey(s.peerId, 'primary'), {
        peerId: s.peerId,
        slot: 'primary',
        keyId: 0,
        cipherAlg: 'AES-256-GCM',
      });
    }
    const tuns = { a: hosts.a.tun('tun0'), b: hosts.b.tun('tun0') };
    const there = ipv4Packet('5.5.5.1', '5.5.5.2', 'through the negotiated key');
    tuns.a.inject(there);
    assert.deepEqual(await drive(net.clock, tuns.b.written.next()), there);
    const back = ipv4Packet('5.5.5.2', '5.5.5.1', 'and back');
    tuns.b.inject(back);
    assert.deepEqual(await drive(net.clock, tuns.a.written.next()), back);
    assert.equal(ifaces.b.getPeer(s.peerId).vpnRxPackets, 1);
    assert.equal(ifaces.a.getPeer(s.peerId).vpnRxPackets, 1);

    // reneg-sec: a minute on, key-id 1 is primary on both ends and key 0 lingers as secondary.
    const active = Promise.all([once(server.session, 'active'), once(client.session, 'active')]);
    net.clock.advance(60_000);
    await drive(net.clock, active);
    for (const iface of Object.values(ifaces)) {
      assert.equal(iface.getKey(s.peerId, 'primary').keyId, 1);
      assert.equal(iface.getKey(s.peerId, 'secondary').keyId, 0);
    }
    const later = ipv4Packet('5.5.5.1', '5.5.5.2', 'on the renegotiated key');
    tuns.a.inject(later);
    assert.deepEqual(await drive(net.clock, tuns.b.written.next()), later);
  } finally {
    server.close();
    client.close();
    ifaces.a.destroy();
    ifaces.b.destroy();
  }
});

test('openvpn reconnect: a silent remote is left after server-poll-timeout, a lost session retried on the same remote, RESTART,[N] moves on', {
  skip,
}, async () => {
  const net = new MemoryNetwork();
  const hosts = { server: net.host('10.0.0.1'), client: net.host('10.0.0.2') };
  const ifaces = {
    server: OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hosts.server.edges }),
    client: OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hosts.client.edges }),
  };
  /** The server restarting: a new interface (and port) on its host. */
  const restartServer = () => {
    ifaces.server.destroy();
    ifaces.server = OvpnInterface.create({ name: 'tun1', mode: 'P2P', edges: hosts.server.edges });
  };
  const keepalive = { keepaliveInterval: 5, keepaliveTimeout: 30 };
  const log: string[] = [];
  /** Our P2P tls-server on 10.0.0.1, a new one for each life of "the server". */
  const serve = () => {
    const server = new P2pTlsTunnel({
      role: 'server',
      iface: ifaces.server,
      clock: net.clock,
      localPort: 1194,
      remoteIpv4: '10.0.0.2',
      remotePort: 1194,
      ciphers: ['AES-256-GCM'],
      tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
      // The server pings but never gives up on its client (its handshake peer would expire).
      keepaliveInterval: 5,
      keepaliveTimeout: 100_000,
    });
    server.on('error', (e) => log.push(`server error: ${e.message}`));
    void server.start();
    return server;
  };
  const connect: ConnectPlan = {
    // Nobody is at 10.0.0.9: its packets go nowhere.
    remotes: [
      { host: '10.0.0.9', port: 1194, transport: 'udp' },
      { host: '10.0.0.1', port: 1194, transport: 'udp' },
    ],
    retrySeconds: 1,
    retryMaxSeconds: 300,
    rounds: null,
    pollTimeout: 20,
    exitNotify: 0,
  };
  const client = new ReconnectingClient({
    iface: ifaces.client,
    clock: net.clock,
    connect,
    tunnel: {
      role: 'client',
      localPort: 1194,
      remoteIpv4: '10.0.0.9',
      remotePort: 1194,
      ciphers: ['AES-256-GCM'],
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      ...keepalive,
    },
  });
  client.on('attempt', (a) => log.push(`attempt ${a.attempt} ${a.remote.host}`));
  client.on('down', (d) => log.push(`down: ${d.reason}, pause ${d.pauseSeconds}`));
  const up = () => once(client, 'established').then(([e]) => e as Established & { remote: { host: string } });
  let server = serve();
  try {
    let established = up();
    client.start();
    assert.equal((await drive(net.clock, established)).remote.host, '10.0.0.1');
    assert.deepEqual(log.splice(0), [
      'attempt 1 10.0.0.9',
      'down: no answer within server-poll-timeout 20 s, pause 1',
      'attempt 2 10.0.0.1',
    ]);

    // The server goes away and comes back: our keepalive expires, and the same remote is tried again.
    server.close();
    restartServer();
    server = serve();
    established = up();
    assert.equal((await drive(net.clock, established)).remote.host, '10.0.0.1');
    assert.deepEqual(log.splice(0), [
      'down: ping-restart: nothing heard from the peer within the keepalive timeout, pause 1',
      'attempt 3 10.0.0.1',
    ]);

    // RESTART,[N]: the server asks us to move on to the next remote.
    const down = once(client, 'down');
    server.session.sendMessage('RESTART,[N]');
    await drive(net.clock, down);
    assert.deepEqual(log.splice(0), ['down: the server is restarting (RESTART), pause 1']);
    net.clock.advance(1_000);
    assert.deepEqual(log.splice(0), ['attempt 4 10.0.0.9']);
  } finally {
    client.close();
    server.close();
    for (const iface of Object.values(ifaces)) iface.destroy();
  }
});
