/**
 * The program users run: `ovpn-dco --config server.conf` (src/cli/ovpn-dco.ts) with a real
 * `openvpn --config client.conf` (Debian's 2.6) connecting to it, both from ordinary config
 * files, in throw-away network namespaces (root). Ping must cross our data channel, and
 * `ovpn-cli get_peer` on the interface ovpn-dco serves must show the VPN counters rising.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { OUR_LINK, OVPN_DCO, OvpnDcoHarness, THEIR_LINK } from './helpers/ovpn-dco-ns.js';

function missing(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, TUN)';
  for (const tool of ['openvpn', 'openssl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool}`;
    }
  }
  return false;
}

const skip = missing();
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

test('ovpn-dco: a real openvpn --config client.conf connects to ovpn-dco --config server.conf; ping crosses and get_peer counts it', {
  skip,
  timeout: 90_000,
}, async () => {
  const h = new OvpnDcoHarness();
  harnesses.push(h);
  h.setup();
  const { files } = h.pki;
  const server = h.writeConfig('server.conf', [
    'port 1194',
    'proto udp',
    'dev tun0',
    `ca ${files.ca}`,
    `cert ${files.serverCert}`,
    `key ${files.serverKey}`,
    'dh none',
    'server 10.8.0.0 255.255.255.0',
    'topology subnet',
    'keepalive 10 60',
  ]);
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
  assert.match(theirs.output, /Data Channel: cipher 'AES-256-GCM'/);

  const before = h.getPeer('tun0', 1);
  assert.equal(before.get('VPN IPv4'), '10.8.0.2');
  const ping = h.exec(1, ['ping', '-c', '5', '-i', '0.2', '-W', '2', '10.8.0.1']);
  assert.match(ping, / 0% packet loss/);
  const afterPing = h.getPeer('tun0', 1);
  const count = (fields: Map<string, string>, label: string) => Number(fields.get(label));
  assert.ok(count(afterPing, 'VPN RX packets') >= count(before, 'VPN RX packets') + 5, afterPing.get('VPN RX packets'));
  assert.ok(count(afterPing, 'VPN TX packets') >= count(before, 'VPN TX packets') + 5, afterPing.get('VPN TX packets'));

  // SIGTERM: the interface goes away and ovpn-dco exits 0.
  ours.child.kill('SIGTERM');
  assert.equal(await ours.exited, 0, ours.tail());
  assert.throws(() => h.exec(0, ['ip', 'link', 'show', 'tun0'], 5_000));
});
