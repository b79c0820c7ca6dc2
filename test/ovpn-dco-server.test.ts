/**
 * The multi-client server users run, `ovpn-dco --config server.conf`, against real openvpn 2.6
 * clients from ordinary config files, in throw-away namespaces (root): several clients over TCP
 * at once, and each transport, cipher and control-channel wrapping with one client (ping always,
 * a one-second iperf3 on some). test/ovpn-dco-e2e.test.ts has the status file and get_peer.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { OVPN_CLI, OvpnDcoHarness } from './helpers/ovpn-dco-ns.js';
import { makePki } from './helpers/pki.js';
import { missing } from './helpers/tools.js';

const skip = missing(['openvpn', 'openssl', 'iperf3']);
const harnesses: OvpnDcoHarness[] = [];
after(async () => {
  for (const h of harnesses) await h.stop();
});

type Wrap = 'tls-crypt' | 'tls-auth' | 'none';
type Keys = Record<Exclude<Wrap, 'none'>, string>;
interface Case {
  proto: 'udp' | 'tcp';
  cipher: 'AES-256-GCM' | 'CHACHA20-POLY1305';
  wrap: Wrap;
}

/** Harness with certificates and a static key for each wrapping, made once per test. */
function harness(): { h: OvpnDcoHarness; keys: Keys } {
  const h = new OvpnDcoHarness();
  harnesses.push(h);
  h.setup();
  return { h, keys: { 'tls-crypt': h.newStaticKey('tc.key'), 'tls-auth': h.newStaticKey('ta.key') } };
}

/** The control-channel wrapping line of each side (tls-auth: the server uses direction 0). */
function wrapLines(c: Case, keys: Keys, server: boolean): string[] {
  if (c.wrap === 'none') return [];
  return c.wrap === 'tls-auth'
    ? [`tls-auth ${keys['tls-auth']} ${server ? 0 : 1}`]
    : [`tls-crypt ${keys['tls-crypt']}`];
}

function serverConfig(h: OvpnDcoHarness, c: Case, keys: Keys, extra: string[] = []): string {
  return h.writeConfig('server.conf', [
    ...h.serverLines(c.proto === 'udp' ? 'udp' : 'tcp-server'),
    'data-ciphers AES-256-GCM:CHACHA20-POLY1305',
    ...wrapLines(c, keys, true),
    ...extra,
  ]);
}

function clientConfig(h: OvpnDcoHarness, name: string, remote: string, c: Case, keys: Keys): string {
  return h.writeConfig(name, [
    ...h.clientLines(c.proto === 'udp' ? 'udp' : 'tcp-client', remote),
    `data-ciphers ${c.cipher}`,
    ...wrapLines(c, keys, false),
    'disable-dco',
    'verb 3',
  ]);
}

/** The address openvpn put on its tun0 in namespace `ns` (what we pushed). */
function tunAddress(h: OvpnDcoHarness, ns: 1 | string): string {
  const shown = h.exec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'tun0']);
  const address = /inet (10\.8\.0\.\d+)\/24/.exec(shown)?.[1];
  assert.ok(address, shown);
  return address;
}

function pings(h: OvpnDcoHarness, from: 1 | string, to: string): void {
  const out = h.exec(from, ['ping', '-c', '3', '-i', '0.2', '-W', '2', to]);
  assert.match(out, /3 packets transmitted, 3 received/, `${from} -> ${to}`);
}

test('ovpn-dco server over TCP: two real openvpn tcp-clients at once, each its own connection, session and peer; they reach the server and each other', {
  skip,
  timeout: 90_000,
}, async () => {
  const { h, keys } = harness();
  const c: Case = { proto: 'tcp', cipher: 'AES-256-GCM', wrap: 'tls-crypt' };
  const second = h.addClient();
  const ours = await h.startOurs(serverConfig(h, c, keys, ['client-to-client']));
  await h.startTheirs(clientConfig(h, 'client0.conf', '10.96.0.1', c, keys));
  await h.startTheirs(clientConfig(h, 'client1.conf', second.server, c, keys), second.ns);
  const connected = ours.output.split('\n').filter((l) => l.includes('client connected: '));
  assert.equal(connected.length, 2, ours.tail());
  assert.match(connected.join('\n'), /from 10\.96\.0\.2:\d+, VPN address 10\.8\.0\.\d+, AES-256-GCM/);
  assert.match(connected.join('\n'), /from 10\.96\.1\.2:\d+, VPN address 10\.8\.0\.\d+, AES-256-GCM/);
  const addresses = [tunAddress(h, 1), tunAddress(h, second.ns)];
  assert.notEqual(addresses[0], addresses[1]);
  pings(h, 1, '10.8.0.1');
  pings(h, second.ns, '10.8.0.1');
  pings(h, 1, addresses[1]!);
  pings(h, second.ns, addresses[0]!);
  // Each client's traffic crossed its own peer: three pings to us, three to the other, and replies.
  for (const [id, address] of [
    [1, addresses[0]],
    [2, addresses[1]],
  ] as const) {
    const peer = h.getPeer('tun0', id);
    const vpn = addresses.includes(peer.get('VPN IPv4') ?? '') ? peer.get('VPN IPv4') : undefined;
    assert.ok(vpn !== undefined, `peer ${id} has a pool address: ${[...peer].join(', ')} (${address})`);
    assert.ok(Number(peer.get('VPN RX packets')) >= 9, `peer ${id}: ${peer.get('VPN RX packets')}`);
    assert.ok(Number(peer.get('VPN TX packets')) >= 9, `peer ${id}: ${peer.get('VPN TX packets')}`);
  }
});

const MATRIX: Case[] = (['udp', 'tcp'] as const).flatMap((proto) =>
  (['AES-256-GCM', 'CHACHA20-POLY1305'] as const).flatMap((cipher) =>
    (['tls-crypt', 'tls-auth', 'none'] as const).map((wrap) => ({ proto, cipher, wrap })),
  ),
);

test('ovpn-dco server matrix: udp/tcp × AES-256-GCM/CHACHA20-POLY1305 × tls-crypt/tls-auth/none, one real openvpn client each: its cipher, ping, iperf3 on some', {
  skip,
  timeout: 240_000,
}, async (t) => {
  const { h, keys } = harness();
  for (const [i, c] of MATRIX.entries()) {
    await t.test(`${c.proto} ${c.cipher} ${c.wrap}`, async () => {
      const ours = await h.startOurs(serverConfig(h, c, keys));
      const theirs = await h.startTheirs(clientConfig(h, 'client.conf', '10.96.0.1', c, keys));
      try {
        await ours.waitLine(
          new RegExp(`client connected: client1 from 10\\.96\\.0\\.2:\\d+, .*, ${c.cipher}$`),
          10_000,
        );
        await theirs.waitLine(new RegExp(`Data Channel: cipher '${c.cipher}'`), 5_000);
        pings(h, 1, '10.8.0.1');
        // A second of bulk traffic on every third case: each transport, cipher and wrapping once or more.
        if (i % 3 === 0) {
          const received = await h.iperf(h.ns[0], h.ns[1], '10.8.0.1', 1);
          assert.ok(received > 100_000, `iperf3 moved ${received} bytes`);
        }
      } finally {
        await theirs.stop();
        await ours.stop();
      }
    });
  }
});

test('ovpn-dco server with server-ipv6: a real openvpn client gets ifconfig-ipv6 from the pool as OpenVPN pushes it, and ping6 crosses to us', {
  skip,
  timeout: 60_000,
}, async () => {
  const { h, keys } = harness();
  const c: Case = { proto: 'udp', cipher: 'AES-256-GCM', wrap: 'tls-crypt' };
  const ours = await h.startOurs(serverConfig(h, c, keys, ['server-ipv6 fd00:8::/64']));
  const theirs = await h.startTheirs(clientConfig(h, 'client.conf', '10.96.0.1', c, keys));
  await ours.waitLine(/client connected: /, 10_000);
  // OpenVPN's form: the client's address with the pool's prefix length, then ours as its gateway.
  assert.match(theirs.output, /PUSH_REPLY,[^']*ifconfig-ipv6 fd00:8::1000\/64 fd00:8::1[,']/);
  assert.match(h.exec(1, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'tun0']), /inet6 fd00:8::1000\/64/);
  assert.match(h.exec(0, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'tun0']), /inet6 fd00:8::1\/64/);
  const out = h.exec(1, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:8::1']);
  assert.match(out, /3 packets transmitted, 3 received/);
  const peer = h.getPeer('tun0', 1);
  assert.equal(peer.get('VPN IPv6'), 'fd00:8::1000', [...peer].join(', '));
  assert.ok(Number(peer.get('VPN RX packets')) >= 3);
});

test('ovpn-dco point-to-point TLS mode with ifconfig-ipv6: our tls-server and a real openvpn tls-client, ping6 both ways', {
  skip,
  timeout: 60_000,
}, async () => {
  const { h, keys } = harness();
  const { files } = h.pki;
  const common = (role: 'server' | 'client') => [
    `tls-${role}`,
    'proto udp',
    'port 1194',
    `ca ${files.ca}`,
    `cert ${role === 'server' ? files.serverCert : files.clientCert}`,
    `key ${role === 'server' ? files.serverKey : files.clientKey}`,
    `tls-crypt ${keys['tls-crypt']}`,
    'data-ciphers AES-256-GCM',
  ];
  await h.startOurs(
    h.writeConfig('p2p-server.conf', [
      ...common('server'),
      'dev tun0',
      'dh none',
      'remote 10.96.0.2 1194',
      'ifconfig 10.9.0.1 10.9.0.2',
      'ifconfig-ipv6 fd00:9::1/64 fd00:9::2',
    ]),
  );
  await h.startTheirs(
    h.writeConfig('p2p-client.conf', [
      ...common('client'),
      'dev tun',
      'remote 10.96.0.1 1194',
      'ifconfig 10.9.0.2 10.9.0.1',
      'ifconfig-ipv6 fd00:9::2/64 fd00:9::1',
      'disable-dco',
      'verb 3',
    ]),
  );
  assert.match(h.exec(0, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'tun0']), /inet6 fd00:9::1\/64/);
  assert.match(
    h.exec(1, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:9::1']),
    /3 packets transmitted, 3 received/,
  );
  assert.match(
    h.exec(0, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:9::2']),
    /3 packets transmitted, 3 received/,
  );
});

test('ovpn-dco server with reneg-sec 3: the server renegotiates a real openvpn client (reneg-sec 0) during a ping flood, no packet lost', {
  skip,
  timeout: 60_000,
}, async () => {
  const { h, keys } = harness();
  const c: Case = { proto: 'udp', cipher: 'AES-256-GCM', wrap: 'tls-crypt' };
  await h.startOurs(serverConfig(h, c, keys, ['reneg-sec 3']));
  const client = h.writeConfig('client.conf', [
    ...h.clientLines('udp', '10.96.0.1'),
    'data-ciphers AES-256-GCM',
    `tls-crypt ${keys['tls-crypt']}`,
    'reneg-sec 0',
    'disable-dco',
    'verb 3',
  ]);
  const theirs = await h.startTheirs(client);
  const flood = h.run('ping flood', 1, ['ping', '-q', '-i', '0.005', '-c', '1600', '-W', '2', '10.8.0.1']);
  assert.equal(await flood.exited, 0, flood.tail());
  assert.match(flood.output, /1600 packets transmitted, 1600 received, 0% packet loss/);
  // Each TLS handshake prints its Control Channel line: the first, and one per renegotiation;
  // with reneg-sec 0 openvpn starts none itself (it would say "TLS: soft reset").
  const handshakes = theirs.output.split('\n').filter((l) => l.includes('Control Channel: TLS'));
  assert.ok(handshakes.length >= 3, theirs.tail());
  assert.doesNotMatch(theirs.output, /TLS: soft reset/);
  const peer = h.getPeer('tun0', 1);
  assert.ok(Number(peer.get('VPN RX packets')) >= 1600, [...peer].join(', '));
});

for (const [value, said] of [
  [1, ''],
  [2, '[N]'],
] as const) {
  test(`ovpn-dco server with explicit-exit-notify ${value}: on SIGTERM a real openvpn client is told to reconnect (RESTART${said === '' ? '' : `,${said}`}), then ovpn-dco exits 0`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const { h, keys } = harness();
    const c: Case = { proto: 'udp', cipher: 'AES-256-GCM', wrap: 'none' };
    const ours = await h.startOurs(serverConfig(h, c, keys, [`explicit-exit-notify ${value}`]));
    const theirs = await h.startTheirs(clientConfig(h, 'client.conf', '10.96.0.1', c, keys));
    await ours.waitLine(/client connected: /, 10_000);
    ours.child.kill('SIGTERM');
    await theirs.waitLine(/server-pushed-connection-reset/, 5_000);
    assert.match(
      theirs.output,
      new RegExp(`Connection reset command was pushed by server \\('${said.replace(/[[\]]/g, '\\$&')}'\\)`),
    );
    // openvpn restarts before it acknowledges, so we wait out OpenVPN's two seconds, then leave.
    assert.equal(await ours.exited, 0, ours.tail());
    assert.match(ours.output, /stopping: stopped by SIGTERM/);
  });
}

for (const proto of ['udp', 'tcp'] as const) {
  test(`ovpn-dco server (${proto}): a real openvpn client whose certificate another CA signed is refused, logged with why, and gets no peer${proto === 'tcp' ? '; its connection is closed at once' : ''}`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const { h, keys } = harness();
    const other = makePki();
    try {
      const c: Case = { proto, cipher: 'AES-256-GCM', wrap: 'tls-crypt' };
      const ours = await h.startOurs(serverConfig(h, c, keys));
      // It trusts our server; its own certificate is the other CA's.
      const client = clientConfig(h, 'client.conf', '10.96.0.1', c, keys);
      const config = h.writeConfig('foreign.conf', [
        `config ${client}`,
        `cert ${other.files.clientCert}`,
        `key ${other.files.clientKey}`,
      ]);
      const theirs = h.run('openvpn', 1, ['openvpn', '--config', config]);
      const refused = await ours.waitLine(/client refused: /, 20_000);
      assert.match(
        refused,
        /client refused: 10\.96\.0\.2:\d+: peer certificate refused: the certificate chain does not lead to our CA$/,
      );
      assert.doesNotMatch(ours.output, /client connected: /);
      assert.doesNotMatch(theirs.output, /Initialization Sequence Completed/);
      assert.doesNotMatch(h.exec(0, [process.execPath, OVPN_CLI, 'tun0', 'get_peer']), /VPN IPv4/);
      // As OpenVPN's server does: the client sees the connection end now, not after the 60 s
      // that an unclaimed connection may wait, and starts over.
      if (proto === 'tcp') await theirs.waitLine(/Connection reset, restarting|connection-reset/, 10_000);
    } finally {
      other.remove();
    }
  });
}
