/**
 * The multi-client server without root: one multi-peer interface on the in-memory network, two
 * of our pull clients on their own hosts. Each gets its own peer-id and pool address through
 * the PUSH_REPLY, traffic reaches each by its VPN address, and a client gone gives both back.
 * Against real openvpn clients: test/openvpn-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { Opcode } from '../src/core/wire.js';
import { OvpnInterface } from '../src/device/ovpn-interface.js';
import { type ManualClock, type MemoryHost, MemoryNetwork } from '../src/edge/memory.js';
import { type P2pTlsOptions, P2pTlsTunnel } from '../src/openvpn/p2p-tunnel.js';
import { decodeHeader, encodeControlPacket } from '../src/openvpn/packet.js';
import { parsePushed } from '../src/openvpn/pushed.js';
import {
  type ClientInfo,
  jittered,
  OpenvpnServer,
  prefixToNetmask,
  type ServerOptions,
} from '../src/openvpn/server.js';
import type { Established } from '../src/openvpn/session.js';
import { TlsCrypt } from '../src/openvpn/tls-wrap.js';
import { ipv4Packet } from './helpers/packets.js';
import { makePki, type Pki } from './helpers/pki.js';
import { missing } from './helpers/tools.js';

// The certificates are made with the openssl CLI; no root needed.
const skip = missing(['openssl'], false);

let pki: Pki;
before(() => {
  if (!skip) pki = makePki();
});
after(() => pki?.remove());

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function drive<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  for (let t = 0; !settled && t < 120_000; t += 100) {
    for (let i = 0; i < 5 && !settled; i++) await turn();
    clock.advance(100);
  }
  if (!settled) assert.fail('nothing within two minutes of clock');
  return watched;
}

/** Our server at 10.0.0.1:1194 on the in-memory network, gateway 10.8.0.1/24, ping 10 / 60. */
function serverOn(net: MemoryNetwork, options: Pick<ServerOptions, 'pool'> & Partial<ServerOptions>) {
  const serverHost = net.host('10.0.0.1');
  const serverIface = OvpnInterface.create({
    name: 'tun0',
    mode: 'MP',
    edges: serverHost.edges,
    followSystemRoutes: false,
  });
  const server = new OpenvpnServer({
    iface: serverIface,
    clock: net.clock,
    localPort: 1194,
    gateway: '10.8.0.1',
    prefixLength: 24,
    ping: 10,
    pingRestart: 60,
    tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
    ciphers: ['AES-256-GCM'],
    ...options,
  });
  return { serverHost, serverIface, server };
}

/** One of our pull clients of that server, on its own host. */
function clientOn(net: MemoryNetwork, at: string | MemoryHost, options: Partial<P2pTlsOptions>) {
  const host = typeof at === 'string' ? net.host(at) : at;
  const iface = OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: host.edges });
  const tunnel = new P2pTlsTunnel({
    role: 'client',
    pull: true,
    iface,
    clock: net.clock,
    localPort: 1194,
    remoteIpv4: '10.0.0.1',
    remotePort: 1194,
    tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    ciphers: ['AES-256-GCM'],
    ...options,
  });
  return { host, iface, tunnel };
}

/** A started server with one of our pull clients (not started: `up` starts it), all closed afterwards. */
async function withOneClient(
  options: Partial<ServerOptions>,
  body: (scene: ReturnType<typeof serverOn> & ReturnType<typeof clientOn> & { net: MemoryNetwork }) => Promise<void>,
): Promise<void> {
  const net = new MemoryNetwork();
  const ours = serverOn(net, { pool: ['10.8.0.2'], ...options });
  const client = clientOn(net, '10.0.0.2', {});
  try {
    await ours.server.start();
    await body({ ...ours, ...client, net });
  } finally {
    ours.server.close();
    client.tunnel.close();
    client.iface.destroy();
    ours.serverIface.destroy();
  }
}

/** Starts a client's tunnel; resolves with its first key. */
function up(tunnel: P2pTlsTunnel): Promise<Established> {
  const first = once(tunnel, 'established').then(([e]) => e as Established);
  void tunnel.start();
  return first;
}

test('openvpn prefixToNetmask', () => {
  assert.deepEqual([24, 16, 30, 32, 0].map(prefixToNetmask), [
    '255.255.255.0',
    '255.255.0.0',
    '255.255.255.252',
    '255.255.255.255',
    '0.0.0.0',
  ]);
});

test('openvpn server: two pull clients get their own peer-id and address, traffic finds each, a client gone frees both', {
  skip,
}, async () => {
  const net = new MemoryNetwork();
  const key = Buffer.alloc(256, 3);
  const { serverHost, serverIface, server } = serverOn(net, {
    pool: ['10.8.0.2', '10.8.0.3', '10.8.0.4'],
    remoteCertTls: 'client',
    wrap: () => new TlsCrypt(key, true),
  });
  const clients = ['10.0.0.2', '10.0.0.3'].map((address) =>
    clientOn(net, address, { remoteCertTls: 'server', wrap: new TlsCrypt(key, false) }),
  );
  try {
    await server.start();
    const connected: ClientInfo[] = [];
    server.on('connected', (c) => connected.push(c));
    const up = Promise.all(clients.map((c) => once(c.tunnel, 'established').then(([e]) => e as Established)));
    for (const c of clients) void c.tunnel.start();
    const est = await drive(net.clock, up);
    assert.deepEqual(
      est.map((e) => [e.peerId, parsePushed(e.pushed!).ifconfig]),
      [
        [1, { local: '10.8.0.2', prefixLength: 24 }],
        [2, { local: '10.8.0.3', prefixLength: 24 }],
      ],
    );
    assert.deepEqual(
      connected.map((c) => [c.peerId, c.address, c.remote, c.commonName]),
      [
        [1, '10.8.0.2', '10.0.0.2:1194', 'client1'],
        [2, '10.8.0.3', '10.0.0.3:1194', 'client1'],
      ],
    );
    assert.deepEqual(
      serverIface
        .getPeers()
        .sort((a, b) => a.id - b.id)
        .map((p) => [p.id, p.vpnIpv4 ?? p.vpnIpv6, p.keepaliveInterval]),
      [
        [1, '10.8.0.2', 10],
        [2, '10.8.0.3', 10],
      ],
    );
    // Each client's packet reaches the server's TUN; the server's reply finds each client by address.
    const serverTun = serverHost.tun('tun0');
    for (const [i, c] of clients.entries()) {
      const from = `10.8.0.${i + 2}`;
      const up = ipv4Packet(from, '10.8.0.1', `from client ${i}`);
      c.host.tun('tun0').inject(up);
      assert.deepEqual(await drive(net.clock, serverTun.written.next()), up);
      const down = ipv4Packet('10.8.0.1', from, `to client ${i}`);
      serverTun.inject(down);
      assert.deepEqual(await drive(net.clock, c.host.tun('tun0').written.next()), down);
    }
    // The first client's peer expires: its id and address are free for the next one.
    const gone = once(server, 'disconnected').then(([d]) => d as ClientInfo & { reason: string });
    serverIface.delPeer(1);
    const d = await gone;
    assert.equal(d.peerId, 1);
    assert.match(d.reason, /peer deleted \(USERSPACE\)/);
    assert.deepEqual(
      server.clients().map((c) => c.peerId),
      [2],
    );
  } finally {
    server.close();
    for (const c of clients) {
      c.tunnel.close();
      c.iface.destroy();
    }
    serverIface.destroy();
  }
});

test('openvpn server: a flood of hard resets from strangers takes no peer, peer-id or address; they are answered from the listening port, and a real client still gets the one address', {
  skip,
}, async () => {
  const net = new MemoryNetwork();
  const { serverIface, server } = serverOn(net, { pool: ['10.8.0.2'] });
  const { iface: clientIface, tunnel } = clientOn(net, '10.0.0.2', {});
  try {
    await server.start();
    assert.equal(server.port, 1194);
    const stranger = net.host('10.0.0.66');
    const socks = Array.from({ length: 20 }, (_, i) => stranger.openUdp(40000 + i));
    for (const sock of socks) {
      const reset = encodeControlPacket({
        opcode: Opcode.CONTROL_HARD_RESET_CLIENT_V2,
        keyId: 0,
        sessionId: Buffer.alloc(8, sock.port & 0xff),
        acks: [],
        messageId: 0,
        payload: Buffer.alloc(0),
      });
      sock.sendTo(reset, { address: '10.0.0.1', port: 1194 });
    }
    // Each one is answered by a server hard reset, from the listening port, and nothing more is made.
    for (const sock of socks) {
      const answer = await drive(net.clock, sock.next());
      assert.equal(answer.from.port, 1194);
      assert.equal(decodeHeader(answer.data).opcode, Opcode.CONTROL_HARD_RESET_SERVER_V2);
    }
    assert.deepEqual(serverIface.getPeers(), []);
    assert.deepEqual(server.clients(), []);

    const up = once(tunnel, 'established').then(([e]) => e as Established);
    void tunnel.start();
    const est = await drive(net.clock, up);
    assert.deepEqual([est.peerId, parsePushed(est.pushed!).ifconfig], [1, { local: '10.8.0.2', prefixLength: 24 }]);
    assert.deepEqual(
      serverIface.getPeers().map((p) => [p.id, p.vpnIpv4, p.remoteIpv4, p.remotePort]),
      [[1, '10.8.0.2', '10.0.0.2', 1194]],
    );
  } finally {
    server.close();
    tunnel.close();
    clientIface.destroy();
    serverIface.destroy();
  }
});

test("openvpn server: reneg-sec jitter is OpenVPN's, a tenth of the interval or down to min", () => {
  for (let i = 0; i < 200; i++) {
    const j = jittered(3600);
    assert.ok(j > 3240 && j <= 3600, `${j}`);
    const m = jittered(100, 50);
    assert.ok(m > 50 && m <= 100, `${m}`);
  }
  assert.equal(jittered(3), 3);
  assert.equal(jittered(0), 0);
});

test('openvpn server: reneg-sec makes the server renegotiate each client on its timer, key-ids in turn, and data still crosses', {
  skip,
}, async () => {
  await withOneClient({ renegotiateSeconds: 5 }, async ({ net, serverHost, serverIface, host, tunnel }) => {
    const keyIds: number[] = [];
    tunnel.on('established', (e) => keyIds.push(e.keyId));
    await drive(net.clock, up(tunnel));
    // Our pull client has no reneg-sec of its own: every new key is the server's doing.
    const third = new Promise<void>((resolve) => tunnel.on('established', (e) => e.keyId === 2 && resolve()));
    await drive(net.clock, third);
    // Once the client has acknowledged our side of it, the new key carries the server's traffic.
    const swapped = (async () => {
      while (serverIface.getKey(1, 'primary').keyId !== 2) await turn();
    })();
    await drive(net.clock, swapped);
    const packet = ipv4Packet('10.8.0.2', '10.8.0.1', 'after two renegotiations');
    host.tun('tun0').inject(packet);
    assert.deepEqual(await drive(net.clock, serverHost.tun('tun0').written.next()), packet);
    const reply = ipv4Packet('10.8.0.1', '10.8.0.2', 'sealed under key 2');
    serverHost.tun('tun0').inject(reply);
    assert.deepEqual(await drive(net.clock, host.tun('tun0').written.next()), reply);
    assert.deepEqual(keyIds, [0, 1, 2]);
  });
});

test('openvpn server: notifyRestart tells each client RESTART (RESTART,[N] for the next server) and resolves once they acknowledge', {
  skip,
}, async () => {
  await withOneClient({}, async ({ net, server, tunnel }) => {
    const messages: string[] = [];
    tunnel.session.on('message', (text) => messages.push(text));
    await drive(net.clock, up(tunnel));
    const started = net.clock.now();
    await drive(net.clock, server.notifyRestart(false));
    // Acknowledged well before the two seconds a silent client would cost.
    assert.ok(net.clock.now() - started < 1000, `${net.clock.now() - started} ms`);
    await drive(net.clock, server.notifyRestart(true));
    assert.deepEqual(messages, ['RESTART', 'RESTART,[N]']);
  });
});

test('openvpn server: a client restarting on the same address and port gets a new session that replaces the old one once through its handshake', {
  skip,
}, async () => {
  await withOneClient({}, async ({ net, server, serverIface, host, iface, tunnel }) => {
    const events: string[] = [];
    server.on('connected', (c) => events.push(`connected ${c.peerId} ${c.address}`));
    server.on('disconnected', (c) => events.push(`disconnected ${c.peerId}: ${c.reason}`));
    await drive(net.clock, up(tunnel));
    // The same host and port, a new session id: as openvpn with a fixed lport after a restart.
    tunnel.close();
    iface.destroy();
    const again = clientOn(net, host, {});
    try {
      const est = await drive(net.clock, up(again.tunnel));
      // The pool has one address: the old session gave it back before the new one took it.
      assert.deepEqual([est.peerId, parsePushed(est.pushed!).ifconfig?.local], [2, '10.8.0.2']);
      assert.deepEqual(events, [
        'connected 1 10.8.0.2',
        'disconnected 1: replaced by a new session',
        'connected 2 10.8.0.2',
      ]);
      assert.deepEqual(
        serverIface.getPeers().map((p) => [p.id, p.remoteIpv4, p.remotePort]),
        [[2, '10.0.0.2', 1194]],
      );
    } finally {
      again.tunnel.close();
      again.iface.destroy();
    }
  });
});

test('openvpn server: without duplicate-cn a client replaces the one connected before under the same name; with it both stay', {
  skip,
}, async () => {
  for (const duplicateCn of [false, true]) {
    const net = new MemoryNetwork();
    const { serverIface, server } = serverOn(net, { pool: ['10.8.0.2', '10.8.0.3'], duplicateCn });
    // Both clients present the one client certificate (CN client1).
    const clients = ['10.0.0.2', '10.0.0.3'].map((address) => clientOn(net, address, {}));
    const gone: string[] = [];
    server.on('disconnected', (c) => gone.push(`${c.peerId} ${c.remote}: ${c.reason}`));
    try {
      await server.start();
      await drive(net.clock, up(clients[0]!.tunnel));
      await drive(net.clock, up(clients[1]!.tunnel));
      const left = server.clients().map((c) => [c.peerId, c.remote, c.commonName]);
      if (duplicateCn) {
        assert.deepEqual(gone, []);
        assert.deepEqual(left, [
          [1, '10.0.0.2:1194', 'client1'],
          [2, '10.0.0.3:1194', 'client1'],
        ]);
      } else {
        assert.deepEqual(gone, [
          '1 10.0.0.2:1194: a new connection with the same name client1 replaced it (duplicate-cn allows both)',
        ]);
        assert.deepEqual(left, [[2, '10.0.0.3:1194', 'client1']]);
        assert.deepEqual(
          serverIface.getPeers().map((p) => p.id),
          [2],
          "the replaced client's peer is deleted",
        );
      }
    } finally {
      server.close();
      for (const c of clients) {
        c.tunnel.close();
        c.iface.destroy();
      }
      serverIface.destroy();
    }
  }
});
