/**
 * Our client (`ovpn-dco --config client.conf`) against a real `openvpn --config server.conf`
 * (Debian's 2.6), in throw-away namespaces (root): the config's and the pushed routes and IPv6
 * address go on our TUN and reach networks behind the server, `local` picks our source address
 * and port, verify-x509-name refuses a server by name, explicit-exit-notify tells the server we
 * left the moment we get SIGTERM; and remotes are tried in turn, the tunnel coming back after the
 * server is killed and started again.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { OvpnDcoHarness, THEIR_LINK } from './helpers/ovpn-dco-ns.js';
import { missing } from './helpers/tools.js';

const skip = missing(['openvpn', 'openssl']);
const harnesses: OvpnDcoHarness[] = [];
after(async () => {
  for (const h of harnesses) await h.stop();
});

/** A second address on our side of the link, for `local`. */
const OUR_LOCAL = '10.96.0.3';

function scene(): OvpnDcoHarness {
  const h = new OvpnDcoHarness('odcc');
  harnesses.push(h);
  h.setup();
  return h;
}

/** openvpn's server.conf: a pool, keepalive and pushes, as a generated one would be. */
const theirServer = (h: OvpnDcoHarness, extra: string[], proto: 'udp' | 'tcp-server' = 'udp') =>
  h.writeConfig('server.conf', [
    ...h.serverLines(proto, 'tun'),
    'data-ciphers AES-256-GCM',
    'disable-dco',
    'verb 4',
    ...extra,
  ]);

function ourClient(h: OvpnDcoHarness, name: string, extra: string[]): string {
  const { files } = h.pki;
  return h.writeConfig(name, [
    'client',
    'dev tun0',
    `ca ${files.ca}`,
    `cert ${files.clientCert}`,
    `key ${files.clientKey}`,
    'remote-cert-tls server',
    ...extra,
  ]);
}

const ping = (h: OvpnDcoHarness, to: string, v6 = false) =>
  assert.match(h.exec(0, ['ping', ...(v6 ? ['-6'] : []), '-c', '3', '-i', '0.2', '-W', '2', to]), / 0% packet loss/);

test('ovpn-dco client: pushed and own routes, pushed IPv6, local, verify-x509-name, and explicit-exit-notify against a real openvpn server', {
  skip,
  timeout: 90_000,
}, async () => {
  const h = scene();
  // Networks behind their server: one it pushes a route to (v4 and v6), one our config routes itself.
  // (Addresses on their loopback: the dummy driver may be missing.)
  h.exec(1, ['ip', 'addr', 'add', '10.97.0.1/24', 'dev', 'lo']);
  h.exec(1, ['ip', 'addr', 'add', '10.95.0.1/24', 'dev', 'lo']);
  h.exec(1, ['ip', 'addr', 'add', 'fd00:97::1/64', 'dev', 'lo']);
  h.exec(0, ['ip', 'addr', 'add', `${OUR_LOCAL}/24`, 'dev', 'odc0']);
  const theirs = await h.startTheirs(
    theirServer(h, [
      'server-ipv6 fd00:8::/64',
      'keepalive 10 60',
      'push "route 10.97.0.0 255.255.255.0"',
      'push "route-ipv6 fd00:97::/64"',
    ]),
  );
  const common = ['proto udp', `remote ${THEIR_LINK} 1194`, 'route 10.95.0.0 255.255.255.0'];

  // verify-x509-name: their certificate's CN is "server", so this client refuses it.
  const refusing = await h.startOurs(ourClient(h, 'refusing.conf', [...common, 'nobind', 'verify-x509-name vpn name']));
  await refusing.waitLine(
    /attempt failed: peer certificate refused: common name "server" does not match verify-x509-name vpn name/,
    15_000,
  );
  await refusing.stop();

  const ours = await h.startOurs(
    ourClient(h, 'client.conf', [
      ...common,
      `local ${OUR_LOCAL}`,
      'lport 1195',
      'verify-x509-name server name',
      'tls-version-min 1.2',
      'explicit-exit-notify 2',
    ]),
  );
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 15_000);
  // openvpn saw us come from the `local` address and `lport`.
  await theirs.waitLine(new RegExp(`Peer Connection Initiated with \\[AF_INET\\]${OUR_LOCAL}:1195`), 5_000);
  const routes = h.exec(0, ['ip', 'route', 'show', 'dev', 'tun0']);
  assert.match(routes, /^10\.97\.0\.0\/24 via 10\.8\.0\.1 /m);
  assert.match(routes, /^10\.95\.0\.0\/24 via 10\.8\.0\.1 /m);
  assert.match(h.exec(0, ['ip', '-6', 'addr', 'show', 'dev', 'tun0']), /inet6 fd00:8::1000\/64 /);
  assert.match(h.exec(0, ['ip', '-6', 'route', 'show', 'dev', 'tun0']), /^fd00:97::\/64 /m);
  ping(h, '10.97.0.1');
  ping(h, '10.95.0.1');
  ping(h, 'fd00:97::1', true);

  // SIGTERM: the EXIT message goes out first, and openvpn lets the client go at once, not after
  // its 60 s ping-restart.
  const sigterm = Date.now();
  ours.child.kill('SIGTERM');
  await ours.waitLine(/exit notification sent to the server/, 5_000);
  assert.equal(await ours.exited, 0, ours.tail());
  await theirs.waitLine(/client1\/.* CC-EEN exit message received by peer/, 5_000);
  assert.ok(Date.now() - sigterm < 5_000);
  // Our routes and addresses came off the TUN one by one (a failed `ip … del` would warn), then it went.
  assert.doesNotMatch(ours.output, /warning/);
  assert.equal(h.exec(0, ['ip', 'route', 'show', '10.97.0.0/24']).trim(), '');
  assert.equal(h.exec(0, ['ip', 'route', 'show', '10.95.0.0/24']).trim(), '');
});

test('ovpn-dco client: a dead first remote is skipped for the second; the tunnel comes back after the server is killed (ping-restart) and after it says RESTART', {
  skip,
  timeout: 90_000,
}, async () => {
  const h = scene();
  const config = theirServer(h, ['keepalive 1 4', 'explicit-exit-notify 1']);
  let theirs = await h.startTheirs(config);
  const ours = await h.startOurs(
    ourClient(h, 'client.conf', [
      'proto udp',
      'nobind',
      // Nothing answers on 1195: after server-poll-timeout the next remote is tried.
      `remote ${THEIR_LINK} 1195`,
      `remote ${THEIR_LINK} 1194`,
      'server-poll-timeout 2',
      'connect-retry 1',
    ]),
  );
  await ours.waitLine(new RegExp(`attempt 1: UDP ${THEIR_LINK}:1195`), 5_000);
  await ours.waitLine(/attempt failed: no answer within server-poll-timeout 2 s; next attempt in 1 s/, 10_000);
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 15_000);
  assert.match(ours.output, new RegExp(`attempt 2: UDP ${THEIR_LINK}:1194`));
  ping(h, '10.8.0.1');

  // Killed without a word: our keepalive (the pushed ping-restart 4) notices, and we start over.
  theirs.child.kill('SIGKILL');
  await theirs.exited;
  await ours.waitLine(/connection lost: ping-restart/, 15_000);
  const lost = ours.output.length;
  // The pushed address is off the TUN until a server pushes one again.
  assert.doesNotMatch(h.exec(0, ['ip', 'addr', 'show', 'dev', 'tun0']), /10\.8\.0\.2/);
  theirs = await h.startTheirs(config);
  // A new session, with new keys in the data channel, to the same remote first (as OpenVPN).
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 30_000, lost);
  assert.doesNotMatch(ours.output.slice(lost), new RegExp(`UDP ${THEIR_LINK}:1195`));
  ping(h, '10.8.0.1');

  // Stopped with explicit-exit-notify, the server tells us to reconnect (RESTART): no ping-restart wait.
  const before = ours.output.length;
  await theirs.stop();
  await ours.waitLine(/connection lost: the server is restarting \(RESTART\)/, 5_000, before);
  const restarted = ours.output.length;
  await h.startTheirs(config);
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 30_000, restarted);
  ping(h, '10.8.0.1');
});

test('ovpn-dco client over TCP: a refused first remote is skipped at once; a server restart closes the connection and we connect again', {
  skip,
  timeout: 90_000,
}, async () => {
  const h = scene();
  const config = theirServer(h, [], 'tcp-server');
  let theirs = await h.startTheirs(config);
  const ours = await h.startOurs(
    ourClient(h, 'client.conf', [
      'proto tcp-client',
      // Nothing listens on 1195: the connection is refused and the next remote tried.
      `remote ${THEIR_LINK} 1195`,
      `remote ${THEIR_LINK} 1194`,
      'connect-retry 1',
    ]),
  );
  await ours.waitLine(/attempt failed: .*ECONNREFUSED.*1195/, 10_000);
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 15_000);
  ping(h, '10.8.0.1');

  // openvpn going away closes the TCP connection: we notice at once, long before ping-restart.
  await theirs.stop();
  await ours.waitLine(/connection lost: connection closed by the peer/, 10_000);
  const lost = ours.output.length;
  theirs = await h.startTheirs(config);
  await ours.waitLine(/pushed address 10\.8\.0\.2/, 30_000, lost);
  ping(h, '10.8.0.1');
});
