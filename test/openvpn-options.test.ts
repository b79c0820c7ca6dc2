/**
 * options.ts: OpenVPN config files (the fixtures of openvpn-config.test.ts) mapped onto the
 * protocol core's options, and what the core cannot do yet refused with the directive and its
 * file:line. No root: nothing is created, only the plan is checked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OpenVpnConfigError, parseOpenVpnArgs } from '../src/openvpn/config.js';
import { planEngine } from '../src/openvpn/options.js';
import { ipArgs, mergePushed, parsePushed, tunSettings } from '../src/openvpn/pushed.js';
import { retryPause } from '../src/openvpn/reconnect.js';
import { TlsAuth, TlsCrypt } from '../src/openvpn/tls-wrap.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'openvpn');

/** Plans test.conf (text) in the fixture directory. */
function plan(text: string) {
  const io = {
    cwd: FIXTURES,
    readFile: (path: string) => (path === join(FIXTURES, 'test.conf') ? text : readFileSync(path, 'utf8')),
  };
  return planEngine(parseOpenVpnArgs(['--config', 'test.conf'], io));
}

const SERVER =
  'dev tun0\nca ca.crt\ncert server.crt\nkey server.key\ndh none\nserver 10.8.0.0 255.255.255.0\ntopology subnet\n';

test('options: server NET MASK is an OpenvpnServer on an MP interface with the pool, gateway and pushes', () => {
  const p = plan(`${SERVER}port 1195\nkeepalive 10 60\npush "dhcp-option DNS 10.8.0.1"\ntls-crypt tc.key\n`);
  assert.equal(p.engine.kind, 'server');
  if (p.engine.kind !== 'server') return;
  const o = p.engine.options;
  assert.equal(p.engine.mode, 'MP');
  assert.deepEqual(p.address, ['10.8.0.1/24']);
  assert.equal(o.localPort, 1195);
  assert.equal(o.gateway, '10.8.0.1');
  assert.equal(o.prefixLength, 24);
  assert.equal(o.duplicateCn, false, "OpenVPN's default: a second client of one name replaces the first");
  const dup = plan(`${SERVER}duplicate-cn\n`);
  assert.equal(dup.engine.kind === 'server' && dup.engine.options.duplicateCn, true);
  assert.equal(o.pool[0], '10.8.0.2');
  assert.equal(o.pool.at(-1), '10.8.0.254');
  // What the server pushes itself is not pushed twice.
  assert.deepEqual(o.push, ['dhcp-option DNS 10.8.0.1']);
  assert.equal(o.ping, 10);
  assert.equal(o.pingRestart, 60);
  assert.ok(o.wrap?.() instanceof TlsCrypt);
});

test('options: a server on proto tcp (tcp-server) takes clients over TCP, one UDP by default', () => {
  const transportOf = (text: string) => {
    const p = plan(text);
    return p.engine.kind === 'server' ? p.engine.options.transport : p.engine.kind;
  };
  assert.equal(transportOf(`${SERVER}proto tcp\n`), 'tcp');
  assert.equal(transportOf(`${SERVER}proto tcp-server\n`), 'tcp');
  assert.equal(transportOf(SERVER), 'udp');
});

test('options: server-ipv6 pairs an IPv6 pool with the IPv4 one and puts NET+1 on the TUN; ifconfig-ipv6 in p2p mode too', () => {
  const p = plan(`${SERVER}server-ipv6 fd00:8::/64\n`);
  assert.equal(p.engine.kind, 'server');
  if (p.engine.kind !== 'server') return;
  const o = p.engine.options;
  assert.deepEqual(p.address6, ['fd00:8::1/64']);
  assert.equal(o.ipv6?.gateway, 'fd00:8::1');
  assert.equal(o.ipv6?.prefixLength, 64);
  assert.deepEqual(o.ipv6?.pool.slice(0, 2), ['fd00:8::1000', 'fd00:8::1001']);
  assert.equal(o.ipv6?.pool.length, o.pool.length);
  // A /124 has room for 14 clients only: the pool shrinks to fit both.
  const small = plan(`${SERVER}server-ipv6 fd00:8::/124\n`);
  if (small.engine.kind !== 'server') return assert.fail('a server');
  assert.equal(small.engine.options.pool.length, 14);
  assert.deepEqual(small.engine.options.ipv6?.pool.slice(0, 1), ['fd00:8::2']);
  assert.equal(plan(SERVER).address6, null);
  const p2p = plan(
    'dev tun0\ntls-server\nca ca.crt\ncert server.crt\nkey server.key\ndh none\nremote 10.1.0.2 1194\nifconfig 10.9.0.1 10.9.0.2\nifconfig-ipv6 fd00:9::1/64 fd00:9::2\n',
  );
  // Outside server mode the TUN's addresses come with its other settings (ovpn-dco applies them).
  assert.equal(p2p.address6, null);
  assert.deepEqual(p2p.tun?.ifconfigIpv6, { local: 'fd00:9::1', prefixLength: 64 });
});

test('options: tls-server with ifconfig and tls-auth is a P2P tunnel with the peer address', () => {
  const p = plan(
    'dev tun0\ntls-server\nca ca.crt\ncert server.crt\nkey server.key\ndh none\nremote 10.1.0.2 1194\nifconfig 10.9.0.1 10.9.0.2\ntls-auth ta.key 0\nreneg-sec 300\n',
  );
  assert.equal(p.engine.kind, 'p2p');
  if (p.engine.kind !== 'p2p') return;
  const o = p.engine.options;
  assert.equal(o.role, 'server');
  assert.deepEqual(p.address, ['local', '10.9.0.1', 'peer', '10.9.0.2']);
  assert.equal(o.remoteIpv4, '10.1.0.2');
  assert.equal(o.renegotiateSeconds, 300);
  assert.ok(o.wrap instanceof TlsAuth);
});

test('options: a pull client starts with the first remote, has the others to try next, and no address of its own', () => {
  const p = plan(
    'client\ndev tun\nremote 10.1.0.1 1194\nremote 10.1.0.3 1194\nca ca.crt\ncert client.crt\nkey client.key\n',
  );
  assert.equal(p.engine.kind, 'p2p');
  if (p.engine.kind !== 'p2p') return;
  assert.equal(p.engine.options.pull, true);
  assert.equal(p.engine.options.remoteIpv4, '10.1.0.1');
  assert.equal(p.address, null);
  assert.deepEqual(
    p.connect?.remotes.map((r) => `${r.host}:${r.port}/${r.transport}`),
    ['10.1.0.1:1194/udp', '10.1.0.3:1194/udp'],
  );
});

test('options: what the core cannot do yet is an error naming the directive and its file:line', () => {
  const refused = (text: string, pattern: RegExp) => {
    assert.throws(
      () => plan(text),
      (error: unknown) => error instanceof OpenVpnConfigError && pattern.test(error.message),
    );
  };
  refused(
    'tls-server\ndev tun0\nifconfig 10.9.0.1 10.9.0.2\nca ca.crt\ncert server.crt\nkey server.key\ndh none\nstatus /tmp/s.log\n',
    /test\.conf:8: status: a status file outside server mode .*not supported/,
  );
  assert.equal(plan(`${SERVER}status /tmp/status.log 5\n`).engine.kind, 'server');
  refused(`${SERVER}route 10.20.0.0 255.255.0.0\n`, /test\.conf:8: route: /);
  refused(
    'client\ndev tun\nremote vpn.example.com\nca ca.crt\ncert client.crt\nkey client.key\n',
    /test\.conf:3: remote vpn\.example\.com: a remote that is not an IPv4 address/,
  );
});

test('options: a client with routes, IPv6, local, several remotes with their own protos, retry rules and TLS limits', () => {
  const p = plan(
    [
      'client',
      'dev tun',
      'proto udp',
      'remote 10.1.0.1 1194',
      'remote 10.1.0.2 443 tcp-client',
      'local 10.1.0.9',
      'connect-retry 2 30',
      'connect-retry-max 3',
      'server-poll-timeout 7',
      'route 192.168.7.0 255.255.255.0',
      'route 192.168.8.0 255.255.255.0 10.8.0.9 5',
      'route-ipv6 fd00:7::/64',
      'verify-x509-name vpn.example name-prefix',
      'tls-version-min 1.3',
      'tls-ciphersuites TLS_AES_256_GCM_SHA384',
      'explicit-exit-notify 3',
      'ca ca.crt',
      'cert client.crt',
      'key client.key',
      '',
    ].join('\n'),
  );
  assert.equal(p.engine.kind, 'p2p');
  if (p.engine.kind !== 'p2p') return;
  const o = p.engine.options;
  assert.equal(o.localIpv4, '10.1.0.9');
  // `local` binds lport (1194 by default), as OpenVPN does.
  assert.equal(o.localPort, 1194);
  assert.deepEqual(o.verifyX509Name, { name: 'vpn.example', type: 'name-prefix' });
  assert.equal(o.tlsVersionMin, '1.3');
  assert.equal(o.tlsCiphersuites, 'TLS_AES_256_GCM_SHA384');
  assert.deepEqual(p.connect, {
    remotes: [
      { host: '10.1.0.1', port: 1194, transport: 'udp' },
      { host: '10.1.0.2', port: 443, transport: 'tcp' },
    ],
    retrySeconds: 2,
    retryMaxSeconds: 30,
    rounds: 3,
    pollTimeout: 7,
    exitNotify: 3,
  });
  // Pushed settings come on top (route-gateway from the server), the config's routes through it.
  const pushed = parsePushed(['route-gateway 10.8.0.1', 'topology subnet', 'ifconfig 10.8.0.2 255.255.255.0']);
  const { settings, skipped } = tunSettings(mergePushed(p.tun!, pushed));
  assert.deepEqual(
    settings.map((s) => ipArgs(s, 'add', 'tun0').join(' ')),
    [
      'addr add 10.8.0.2/24 dev tun0',
      'route add 192.168.7.0/24 via 10.8.0.1 dev tun0',
      'route add 192.168.8.0/24 via 10.8.0.9 metric 5 dev tun0',
      '-6 route add fd00:7::/64 dev tun0',
    ],
  );
  assert.deepEqual(skipped, []);
});

test('options: net30 point-to-point routes go via the peer; names that are no address are skipped, not guessed', () => {
  const { settings, skipped } = tunSettings(
    parsePushed([
      'ifconfig 10.8.0.6 10.8.0.5',
      'ifconfig-ipv6 fd00:8::1000/64 fd00:8::1',
      'route 10.20.0.0 255.255.0.0',
      'route net.example 255.255.255.0',
      'route-ipv6 fd00:20::/48',
    ]),
  );
  assert.deepEqual(
    settings.map((s) => ipArgs(s, 'del', 'tun1').join(' ')),
    [
      'addr del local 10.8.0.6 peer 10.8.0.5 dev tun1',
      '-6 addr del fd00:8::1000/64 dev tun1',
      'route del 10.20.0.0/16 via 10.8.0.5 dev tun1',
      '-6 route del fd00:20::/48 dev tun1',
    ],
  );
  assert.deepEqual(skipped, ['route net.example 255.255.255.0']);
});

test('options: connect-retry backs off as OpenVPN: doubling once every remote failed five times, up to the cap', () => {
  const connect = {
    remotes: [{}, {}] as never[],
    retrySeconds: 1,
    retryMaxSeconds: 20,
    rounds: null,
    pollTimeout: 120,
    exitNotify: 0,
  };
  assert.deepEqual(
    [0, 9, 10, 11, 12, 14, 16, 20].map((n) => retryPause(connect, n)),
    [1, 1, 2, 2, 4, 8, 16, 20],
  );
  assert.equal(retryPause({ ...connect, retrySeconds: 0 }, 0), 0);
});
