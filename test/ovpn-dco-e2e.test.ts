/**
 * The program users run: `ovpn-dco --config server.conf` (src/cli/ovpn-dco.ts) with a real
 * `openvpn --config client.conf` (Debian's 2.6) connecting to it, both from ordinary config
 * files, in throw-away network namespaces (root). Ping must cross our data channel, and
 * `ovpn-cli get_peer` on the interface ovpn-dco serves must show the VPN counters rising, and
 * its `status FILE 1` must list the client as OpenVPN would.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { OUR_LINK, OVPN_DCO, OvpnDcoHarness, THEIR_LINK } from './helpers/ovpn-dco-ns.js';
import { missing } from './helpers/tools.js';

const skip = missing(['openvpn', 'openssl']);
const harnesses: OvpnDcoHarness[] = [];
after(async () => {
  for (const h of harnesses) await h.stop();
});

test('ovpn-dco: a bad config exits non-zero with the parser error naming file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-dco-'));
  try {
    const config = join(dir, 'bad.conf');
    writeFileSync(config, 'dev tun\nno-such-directive 1\n');
    const run = spawnSync(process.execPath, [OVPN_DCO, '--config', config], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, new RegExp(`${config}:2: unknown directive "no-such-directive"`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const count = (fields: Map<string, string>, label: string) => Number(fields.get(label));

/** Pings `to` from namespace `from`: no loss, and our peer's VPN counters (ovpn-cli get_peer) rise by as much. */
function pingCounted(h: OvpnDcoHarness, from: 0 | 1, to: string, peerId?: number): void {
  const before = h.getPeer('tun0', peerId);
  const ping = h.exec(from, ['ping', '-c', '5', '-i', '0.2', '-W', '2', to]);
  assert.match(ping, / 0% packet loss/);
  const after = h.getPeer('tun0', peerId);
  for (const label of ['VPN RX packets', 'VPN TX packets'])
    assert.ok(count(after, label) >= count(before, label) + 5, `${label}: ${before.get(label)} → ${after.get(label)}`);
}

for (const tlsCrypt of [false, true]) {
  test(`ovpn-dco: a real openvpn --config client.conf connects to ovpn-dco --config server.conf${tlsCrypt ? ' (tls-crypt)' : ''}; ping crosses, get_peer counts it, the status file lists it`, {
    skip,
    timeout: 90_000,
  }, async () => {
    const h = new OvpnDcoHarness();
    harnesses.push(h);
    h.setup();
    const { files } = h.pki;
    const wrap = tlsCrypt ? [`tls-crypt ${h.newStaticKey('tc.key')}`] : [];
    const statusFile = join(h.pki.dir, 'openvpn-status.log');
    const server = h.writeServerConfig('tun0', ['keepalive 10 60', `status ${statusFile} 1`, ...wrap]);
    const client = h.writeConfig('client.conf', [
      'client',
      'dev tun',
      'proto udp',
      `remote ${OUR_LINK} 1194`,
      'nobind',
      `ca ${files.ca}`,
      `cert ${files.clientCert}`,
      `key ${files.clientKey}`,
      'remote-cert-tls server',
      'data-ciphers AES-256-GCM',
      'explicit-exit-notify 1',
      ...wrap,
      // Our data channel is the offload; openvpn's own would only be the one it falls back to.
      'disable-dco',
      'verb 3',
    ]);
    const ours = await h.startOurs(server);
    const theirs = await h.startTheirs(client);
    const connected = await ours.waitLine(/client connected: /, 10_000);
    assert.match(
      connected,
      new RegExp(`client connected: client1 from ${THEIR_LINK}:\\d+, VPN address 10\\.8\\.0\\.2, AES-256-GCM`),
    );
    // openvpn may print this after its completion line.
    await theirs.waitLine(/Data Channel: cipher 'AES-256-GCM'/, 5_000);

    assert.equal(h.getPeer('tun0', 1).get('VPN IPv4'), '10.8.0.2');
    pingCounted(h, 1, '10.8.0.1', 1);
    // The status file (rewritten every second) lists the client with its link bytes, as OpenVPN's.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const status = readFileSync(statusFile, 'utf8');
    const row = new RegExp(
      `^client1,${THEIR_LINK.replaceAll('.', '\\.')}:(\\d+),(\\d+),(\\d+),\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`,
      'm',
    ).exec(status);
    assert.ok(row !== null, status);
    assert.ok(Number(row[2]) > 0 && Number(row[3]) > 0, status);
    assert.match(status, new RegExp(`^10\\.8\\.0\\.2,client1,${THEIR_LINK.replaceAll('.', '\\.')}:${row[1]},`, 'm'));
    assert.match(
      status,
      /^OpenVPN CLIENT LIST\nUpdated,[^\n]+\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n/,
    );
    assert.match(status, /\nEND\n$/);
    // A client leaving says so (explicit-exit-notify): one log line, its place freed.
    await theirs.stop();
    await ours.waitLine(/client disconnected: client1 from .*, VPN address 10\.8\.0\.2: /, 10_000);

    // SIGTERM: listen_mcast subscribers hear the interface go, it goes, and ovpn-dco exits 0.
    const listener = await h.listen();
    ours.child.kill('SIGTERM');
    assert.equal(await ours.exited, 0, ours.tail());
    // Its last status file is whole (written once more on the way out, renamed into place).
    assert.match(readFileSync(statusFile, 'utf8'), /^OpenVPN CLIENT LIST\n[\s\S]*\nEND\n$/);
    assert.deepEqual(
      readdirSync(h.pki.dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
    await listener.waitLine(/received CMD_IFACE_DEL_NTF on tun0/, 5_000);
    assert.throws(() => h.exec(0, ['ip', 'link', 'show', 'tun0'], 5_000));
  });
}

const P2P_CASES = [
  { proto: 'udp', wrap: 'tls-crypt', ours: 'udp', theirs: 'udp' },
  { proto: 'tcp', wrap: 'tls-auth', ours: 'tcp-server', theirs: 'tcp-client' },
] as const;
for (const c of P2P_CASES) {
  test(`ovpn-dco: point-to-point TLS mode from a config file (tls-server, ifconfig, ${c.wrap}) over ${c.proto} with a real openvpn tls-client; ping crosses`, {
    skip,
    timeout: 90_000,
  }, async () => {
    const h = new OvpnDcoHarness();
    harnesses.push(h);
    h.setup();
    const { files } = h.pki;
    const key = h.newStaticKey(`${c.wrap}.key`);
    // tls-auth: each side names its half of the key; tls-crypt: the role decides.
    const wrap = (direction: 0 | 1) => (c.wrap === 'tls-auth' ? `tls-auth ${key} ${direction}` : `tls-crypt ${key}`);
    const ours = h.writeConfig('p2p-server.conf', [
      'tls-server',
      'dev tun0',
      `proto ${c.ours}`,
      'port 1194',
      `remote ${THEIR_LINK} 1194`,
      'ifconfig 10.9.0.1 10.9.0.2',
      `ca ${files.ca}`,
      `cert ${files.serverCert}`,
      `key ${files.serverKey}`,
      'dh none',
      wrap(0),
      'data-ciphers CHACHA20-POLY1305:AES-256-GCM',
      'keepalive 10 60',
    ]);
    const theirs = h.writeConfig('p2p-client.conf', [
      'tls-client',
      'dev tun',
      `proto ${c.theirs}`,
      'port 1194',
      `remote ${OUR_LINK} 1194`,
      'ifconfig 10.9.0.2 10.9.0.1',
      `ca ${files.ca}`,
      `cert ${files.clientCert}`,
      `key ${files.clientKey}`,
      wrap(1),
      'data-ciphers AES-256-GCM:CHACHA20-POLY1305',
      'disable-dco',
      'verb 3',
    ]);
    const us = await h.startOurs(ours);
    await h.startTheirs(theirs);
    // We are the tls-server: our preference decides.
    await us.waitLine(/peer client1 at .*: key 0 up, CHACHA20-POLY1305/, 10_000);
    pingCounted(h, 1, '10.9.0.1');
  });
}

test('ovpn-dco: our pull client from client.conf (tls-auth, key-direction) against a real openvpn --config server.conf; ping crosses', {
  skip,
  timeout: 90_000,
}, async () => {
  const h = new OvpnDcoHarness();
  harnesses.push(h);
  h.setup();
  const { files } = h.pki;
  const key = h.newStaticKey('ta.key');
  const theirs = h.writeServerConfig('tun', [
    'keepalive 10 60',
    `tls-auth ${key} 0`,
    'data-ciphers AES-256-GCM',
    'disable-dco',
    'verb 3',
  ]);
  const ours = h.writeConfig('client.conf', [
    'client',
    'dev tun0',
    'proto udp',
    `remote ${THEIR_LINK} 1194`,
    'nobind',
    `ca ${files.ca}`,
    `cert ${files.clientCert}`,
    `key ${files.clientKey}`,
    'remote-cert-tls server',
    `tls-auth ${key}`,
    'key-direction 1',
  ]);
  await h.startTheirs(theirs);
  const us = await h.startOurs(ours);
  await us.waitLine(/pushed address 10\.8\.0\.2/, 15_000);
  pingCounted(h, 0, '10.8.0.1');
});
