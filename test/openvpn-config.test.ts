/**
 * OpenVPN configuration (src/openvpn/config.ts): OpenVPN's own sample configs, a generated
 * client.ovpn with inline blocks, OpenVPN's point-to-point TLS mode, every directive's typed
 * result, and the exact errors for unknown directives, wrong arity and wrong values. The keys and
 * certificates in test/fixtures/openvpn are throw-away ones (generate.sh).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type ConfigIo,
  describeOpenVpnConfig,
  OpenVpnConfigError,
  parseOpenVpnArgs,
  splitLine,
} from '../src/openvpn/config.js';
import { formatStaticKey, parseStaticKey } from '../src/openvpn/static-key.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'openvpn');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const keyBytes = (name: string): Uint8Array => parseStaticKey(fixture(name), name);

/** Runs in the fixture directory, with extra in-memory files there (they shadow real ones). */
function io(files: Record<string, string> = {}, reads: string[] = []): ConfigIo {
  return {
    cwd: FIXTURES,
    readFile(path) {
      reads.push(path);
      const name = path.startsWith(`${FIXTURES}/`) ? path.slice(FIXTURES.length + 1) : path;
      return files[name] ?? readFileSync(path, 'utf8');
    },
  };
}

/** Parses `text` as test.conf in the fixture directory, with more command-line arguments after it. */
function parse(text: string, ...more: string[]) {
  return parseOpenVpnArgs(['--config', 'test.conf', ...more], io({ 'test.conf': text }));
}

function parseError(text: string, ...more: string[]): string {
  try {
    parse(text, ...more);
  } catch (error) {
    assert.ok(error instanceof OpenVpnConfigError, String(error));
    return error.message;
  }
  assert.fail('expected an OpenVpnConfigError');
}

/** A p2p TLS server's lines, to which a test adds the directive it is about. */
const P2P = 'dev tun\ntls-server\nca ca.crt\ncert server.crt\nkey server.key\ndh none\n';
/** A server's lines. */
const SERVER = `${P2P}topology subnet\nserver 10.8.0.0 255.255.255.0\n`;
/** A client's lines. */
const CLIENT = 'client\ndev tun\nremote vpn.example.com\nca ca.crt\ncert client.crt\nkey client.key\n';

describe('OpenVPN sample configs', () => {
  test("Debian's sample server.conf: a subnet server with keepalive pushed", () => {
    const config = parseOpenVpnArgs(['--config', 'server.conf'], io());
    assert.equal(config.role, 'server');
    assert.equal(config.pull, false);
    assert.deepEqual(config.dev, { name: 'tun', fixed: false });
    assert.equal(config.topology, 'subnet');
    assert.deepEqual(config.transport, { proto: 'udp', family: 'any', lport: 1194, local: null });
    assert.deepEqual(config.remotes, []);
    assert.deepEqual(config.server, {
      network: '10.8.0.0',
      netmask: '255.255.255.0',
      prefixLen: 24,
      pool: { start: '10.8.0.2', end: '10.8.0.254' },
    });
    assert.equal(config.serverIpv6, null);
    assert.deepEqual(config.ifconfig, { local: '10.8.0.1', netmask: '255.255.255.0', remote: null });
    assert.deepEqual(config.tls.ca, { text: fixture('ca.crt'), source: join(FIXTURES, 'ca.crt') });
    assert.deepEqual(config.tls.cert, { text: fixture('server.crt'), source: join(FIXTURES, 'server.crt') });
    assert.deepEqual(config.tls.key, { text: fixture('server.key'), source: join(FIXTURES, 'server.key') });
    assert.deepEqual(config.tls.dh, { text: fixture('dh2048.pem'), source: join(FIXTURES, 'dh2048.pem') });
    assert.equal(config.tlsAuth, null);
    assert.equal(config.tlsCrypt, null);
    assert.deepEqual(config.dataCiphers, ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305']);
    assert.equal(config.dataCiphersFallback, null);
    assert.equal(config.auth, 'SHA1');
    assert.deepEqual(config.keepalive, { interval: 10, timeout: 120 });
    assert.equal(config.ping, 10);
    assert.equal(config.pingRestart, 240);
    assert.deepEqual(config.push, ['route-gateway 10.8.0.1', 'topology subnet', 'ping 10', 'ping-restart 120']);
    assert.equal(config.renegSec, 3600);
    assert.equal(config.maxClients, 1024);
    assert.equal(config.tlsVersionMin, '1.2');
    assert.deepEqual(config.status, { path: '/var/log/openvpn/openvpn-status.log', interval: 60, version: 1 });
    assert.equal(config.verb, 3);
    assert.equal(config.explicitExitNotify, 1);
    assert.deepEqual(config.configFiles, ['server.conf']);
    assert.equal(config.cwd, FIXTURES);
    assert.deepEqual(config.notes, [
      'server.conf:122: ifconfig-pool-persist: accepted, no effect: client addresses are not kept across restarts',
      'server.conf:276: persist-key: accepted, no effect: keys are read once, at start',
      'server.conf:277: persist-tun: accepted, no effect: the TUN device lives as long as the process',
    ]);
  });

  test("Debian's sample client.conf: a client that pulls, binds nothing, checks the server's EKU", () => {
    const config = parseOpenVpnArgs(['client.conf'], io());
    assert.equal(config.role, 'client');
    assert.equal(config.pull, true);
    assert.deepEqual(config.remotes, [{ host: 'my-server-1', port: 1194, proto: 'udp', family: 'any' }]);
    assert.deepEqual(config.transport, { proto: 'udp', family: 'any', lport: null, local: null });
    assert.equal(config.tls.cert.text, fixture('client.crt'));
    assert.equal(config.tls.dh, null);
    assert.equal(config.remoteCertTls, 'server');
    assert.equal(config.ping, 0);
    assert.equal(config.pingRestart, 0);
    assert.deepEqual(config.push, []);
    assert.equal(config.server, null);
    assert.equal(config.ifconfig, null);
    assert.deepEqual(config.notes, [
      'client.conf:54: resolv-retry: accepted, no effect: name resolution is retried by the session',
      'client.conf:65: persist-key: accepted, no effect: keys are read once, at start',
      'client.conf:66: persist-tun: accepted, no effect: the TUN device lives as long as the process',
    ]);
  });

  test('a generated client.ovpn: inline <ca>, <cert>, <key> and <tls-crypt>', () => {
    const config = parseOpenVpnArgs(['--config', 'client.ovpn'], io());
    assert.equal(config.role, 'client');
    assert.deepEqual(config.remotes, [{ host: 'vpn.example.com', port: 1194, proto: 'udp', family: 'any' }]);
    assert.deepEqual(config.tls.ca, { text: fixture('ca.crt'), source: 'inline <ca>' });
    assert.deepEqual(config.tls.cert, { text: fixture('client.crt'), source: 'inline <cert>' });
    assert.deepEqual(config.tls.key, { text: fixture('client.key'), source: 'inline <key>' });
    assert.deepEqual(config.tlsCrypt, { key: { bytes: keyBytes('tc.key'), source: 'inline <tls-crypt>' } });
    assert.equal(config.auth, 'SHA512');
    assert.equal(config.verb, 3);
    assert.deepEqual(config.notes, [
      'client.ovpn:5: resolv-retry: accepted, no effect: name resolution is retried by the session',
      'client.ovpn:7: persist-key: accepted, no effect: keys are read once, at start',
      'client.ovpn:8: persist-tun: accepted, no effect: the TUN device lives as long as the process',
    ]);
  });

  test('point-to-point TLS mode as bench:tunnel runs OpenVPN: ifconfig, tls-auth, p2p keepalive', () => {
    const config = parseOpenVpnArgs(['--config', 'p2p-server.conf'], io());
    assert.equal(config.role, 'p2p-tls-server');
    assert.deepEqual(config.transport, { proto: 'udp', family: 'any', lport: 1195, local: '10.10.1.1' });
    assert.deepEqual(config.remotes, [{ host: '10.10.1.2', port: 1195, proto: 'udp', family: 'any' }]);
    assert.deepEqual(config.ifconfig, { local: '5.5.5.1', netmask: null, remote: '5.5.5.2' });
    assert.equal(config.tls.dh, null);
    assert.deepEqual(config.tlsAuth, {
      key: { bytes: keyBytes('ta.key'), source: join(FIXTURES, 'ta.key') },
      direction: 0,
    });
    assert.deepEqual(config.dataCiphers, ['CHACHA20-POLY1305']);
    assert.equal(config.dataCiphersFallback, 'CHACHA20-POLY1305');
    assert.equal(config.remoteCertTls, 'client');
    // Not a server: keepalive becomes ping and ping-restart as written, and nothing is pushed.
    assert.equal(config.ping, 10);
    assert.equal(config.pingRestart, 60);
    assert.deepEqual(config.push, []);
    assert.deepEqual(config.notes, [
      'p2p-server.conf:20: mute-replay-warnings: accepted, no effect: replayed packets are counted, not logged',
    ]);
  });

  test('a summary for the log names the role, transport, pool and pushes', () => {
    const text = describeOpenVpnConfig(parseOpenVpnArgs(['server.conf'], io()));
    const lines = text.split('\n');
    for (const line of [
      'role                 server',
      'transport            udp',
      'bind                 *:1194',
      'server               10.8.0.0/24 pool 10.8.0.2-10.8.0.254',
      'push                 route-gateway 10.8.0.1',
      'ping                 10 restart 240',
    ]) {
      assert.ok(lines.includes(line), `${line}\nnot in\n${text}`);
    }
  });
});

describe('command line', () => {
  test('a directive after --config overrides the file, as in openvpn', () => {
    const config = parseOpenVpnArgs(['--config', 'server.conf', '--port', '1195', '--verb', '4'], io());
    assert.equal(config.transport.lport, 1195);
    assert.equal(config.verb, 4);
  });

  test('a directive before --config is overridden by the file', () => {
    assert.equal(parseOpenVpnArgs(['--verb', '5', '--config', 'server.conf'], io()).verb, 3);
  });

  test('the whole configuration on the command line', () => {
    const argv = ['--client', '--dev', 'tun1', '--remote', 'a.example', '1195', 'tcp', '--remote', 'b.example'];
    const config = parseOpenVpnArgs([...argv, '--ca', 'ca.crt', '--cert', 'client.crt', '--key', 'client.key'], io());
    assert.equal(config.role, 'client');
    assert.deepEqual(config.dev, { name: 'tun1', fixed: true });
    assert.deepEqual(config.remotes, [
      { host: 'a.example', port: 1195, proto: 'tcp-client', family: 'any' },
      { host: 'b.example', port: 1194, proto: 'udp', family: 'any' },
    ]);
    assert.deepEqual(config.configFiles, []);
  });

  test('argument errors', () => {
    const cases: [string[], string][] = [
      [[], 'command line: nothing to do: expected --config FILE or --directive arguments'],
      [['--foo', 'x'], 'command line: unknown directive "--foo"'],
      [['port', '1194'], 'command line: "port" is not a directive: expected --name followed by its arguments'],
      [['--config', 'server.conf', '--port'], 'command line: "--port" expects 1 parameter (port PORT), got 0'],
      [['--config', 'missing.conf'], `command line: cannot read config file ${join(FIXTURES, 'missing.conf')}: ENOENT`],
    ];
    for (const [argv, message] of cases) {
      assert.throws(() => parseOpenVpnArgs(argv, io()), { name: 'OpenVpnConfigError', message }, argv.join(' '));
    }
  });
});

describe('tokenizing as openvpn does', () => {
  test('quotes, escapes and comments', () => {
    const cases: [string, string[]][] = [
      ['', []],
      ['   # comment', []],
      ['; comment', []],
      ['key server.key  # This file should be kept secret', ['key', 'server.key']],
      ['push "route 10.9.0.0 255.255.255.0"', ['push', 'route 10.9.0.0 255.255.255.0']],
      ["push 'dhcp-option DNS 10.8.0.1'", ['push', 'dhcp-option DNS 10.8.0.1']],
      ['a "b \\" c" \'d \\ e\'', ['a', 'b " c', 'd \\ e']],
      ['a b\\ c \\\\d', ['a', 'b c', '\\d']],
      ['a#b c;d', ['a#b', 'c;d']],
      ['"ab"cd ""', ['ab', 'cd', '']],
      ['\tverb\t3\r', ['verb', '3']],
    ];
    for (const [line, params] of cases) assert.deepEqual(splitLine(line), params, line);
  });

  test('unclosed quotes and stray backslashes are errors', () => {
    const at = { file: 'x.conf', line: 4 };
    assert.throws(() => splitLine('push "route', at), { message: 'x.conf:4: no closing quotation (")' });
    assert.throws(() => splitLine("push 'route", at), { message: "x.conf:4: no closing single quotation (')" });
    assert.throws(() => splitLine('key c:\\keys\\a.key', at), {
      message: 'x.conf:4: bad backslash before "k": a backslash escapes only \\, " or a space (write \\\\ for one)',
    });
  });

  test('a leading -- on a directive in a file is dropped; a BOM is ignored', () => {
    const config = parse(`\uFEFF${P2P}--verb 6\n`);
    assert.equal(config.verb, 6);
  });

  test('inline blocks: the closing tag may be indented; a missing one is an error', () => {
    const ca = fixture('ca.crt');
    assert.equal(parse(`${P2P}<ca>\n${ca}   </ca>\n`).tls.ca.text, ca);
    assert.equal(parseError(`${P2P}<ca>\n${ca}`), 'test.conf:7: <ca> has no closing </ca>');
    assert.equal(
      parseError(`${P2P}<remote>\nx\n</remote>\n`),
      'test.conf:7: "remote" cannot be an inline <remote> block',
    );
  });
});

describe('directives', () => {
  test('a client with everything: remotes with protocols, ciphers, TLS checks, routes, timers', () => {
    const config = parse(
      [
        'client',
        'dev tun0',
        'tun-mtu 1420',
        'proto udp6',
        'rport 1200',
        'remote a.example',
        'remote b.example 443 tcp-client',
        'remote 192.0.2.1 1194 udp4',
        'remote-random',
        'ca ca.crt',
        'cert client.crt',
        'key client.key',
        'key-direction 1',
        `<tls-auth>\n${fixture('ta.key')}</tls-auth>`,
        'data-ciphers aes-128-gcm:CHACHA20-POLY1305:?AES-256-CBC',
        'data-ciphers-fallback AES-256-GCM',
        'auth sha256',
        'remote-cert-tls server',
        'verify-x509-name server name',
        'tls-version-min 1.3',
        'tls-cipher TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256',
        'tls-ciphersuites TLS_AES_256_GCM_SHA384',
        'reneg-sec 600 300',
        'ping 5',
        'ping-restart 30',
        'route 192.168.10.0 255.255.255.0',
        'route 192.168.20.0 255.255.255.0 10.8.0.1 5',
        'route 10.99.0.1',
        'explicit-exit-notify',
        'status client-status.log 10',
        'mssfix 0',
        'status-version 2',
        'txqueuelen 500',
        'route-ipv6 2001:db8:0:1::/64',
        'route-ipv6 2001:db8::1 fd00::1 10',
      ].join('\n'),
    );
    assert.equal(config.role, 'client');
    assert.deepEqual(config.dev, { name: 'tun0', fixed: true });
    assert.equal(config.tunMtu, 1420);
    assert.equal(config.txqueuelen, 500);
    assert.deepEqual(config.routesIpv6, [
      { network: '2001:db8:0:1::', prefixLen: 64, gateway: null, metric: null },
      { network: '2001:db8::1', prefixLen: 128, gateway: 'fd00::1', metric: 10 },
    ]);
    assert.deepEqual(config.transport, { proto: 'udp', family: 'ipv6', lport: null, local: null });
    assert.deepEqual(config.remotes, [
      { host: 'a.example', port: 1200, proto: 'udp', family: 'ipv6' },
      { host: 'b.example', port: 443, proto: 'tcp-client', family: 'any' },
      { host: '192.0.2.1', port: 1194, proto: 'udp', family: 'ipv4' },
    ]);
    assert.equal(config.remoteRandom, true);
    assert.deepEqual(config.tlsAuth, { key: { bytes: keyBytes('ta.key'), source: 'inline <tls-auth>' }, direction: 1 });
    assert.deepEqual(config.dataCiphers, ['AES-128-GCM', 'CHACHA20-POLY1305']);
    assert.equal(config.dataCiphersFallback, 'AES-256-GCM');
    assert.equal(config.cipher, 'AES-256-GCM');
    assert.equal(config.auth, 'SHA256');
    assert.deepEqual(config.verifyX509Name, { name: 'server', type: 'name' });
    assert.equal(config.tlsVersionMin, '1.3');
    assert.equal(config.tlsCipher, 'TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256');
    assert.equal(config.tlsCiphersuites, 'TLS_AES_256_GCM_SHA384');
    assert.equal(config.renegSec, 600);
    assert.equal(config.renegSecMin, 300);
    assert.equal(config.ping, 5);
    assert.equal(config.pingRestart, 30);
    assert.equal(config.keepalive, null);
    assert.deepEqual(config.routes, [
      { network: '192.168.10.0', netmask: '255.255.255.0', gateway: null, metric: null },
      { network: '192.168.20.0', netmask: '255.255.255.0', gateway: '10.8.0.1', metric: 5 },
      { network: '10.99.0.1', netmask: '255.255.255.255', gateway: null, metric: null },
    ]);
    assert.equal(config.explicitExitNotify, 1);
    assert.deepEqual(config.status, { path: join(FIXTURES, 'client-status.log'), interval: 10, version: 2 });
    assert.deepEqual(config.notes, [
      'test.conf:37: data-ciphers: optional AES-256-CBC is not carried by ovpn-dco (it carries AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305): left out',
    ]);
  });

  test('a server with everything: IPv6 pool, TCP, client-to-client, pushes in order', () => {
    const config = parse(
      [
        SERVER,
        'server-ipv6 fd00:1::/64',
        'proto tcp',
        'lport 443',
        'local 192.0.2.1',
        'push "redirect-gateway def1 bypass-dhcp"',
        "push 'dhcp-option DNS 10.8.0.1'",
        'client-to-client',
        'duplicate-cn',
        'max-clients 10',
        'tls-crypt tc.key',
        'keepalive 10 60',
        'remote-cert-tls client',
        'cipher AES-256-CBC',
        'explicit-exit-notify 2',
        'verb 0',
      ].join('\n'),
    );
    assert.equal(config.role, 'server');
    assert.deepEqual(config.transport, { proto: 'tcp-server', family: 'any', lport: 443, local: '192.0.2.1' });
    assert.deepEqual(config.serverIpv6, { network: 'fd00:1::', prefixLen: 64, poolStart: 'fd00:1::1000' });
    assert.deepEqual(config.ifconfigIpv6, { local: 'fd00:1::1', prefixLen: 64, remote: 'fd00:1::2' });
    assert.deepEqual(config.tlsCrypt, { key: { bytes: keyBytes('tc.key'), source: join(FIXTURES, 'tc.key') } });
    assert.equal(config.clientToClient, true);
    assert.equal(config.duplicateCn, true);
    assert.equal(config.maxClients, 10);
    assert.equal(config.remoteCertTls, 'client');
    assert.equal(config.explicitExitNotify, 0);
    assert.equal(config.verb, 0);
    assert.equal(config.pingRestart, 120);
    assert.deepEqual(config.push, [
      'redirect-gateway def1 bypass-dhcp',
      'dhcp-option DNS 10.8.0.1',
      'tun-ipv6',
      'route-gateway 10.8.0.1',
      'topology subnet',
      'ping 10',
      'ping-restart 60',
    ]);
    // A server negotiates; a --cipher outside data-ciphers is no fallback (OpenVPN 2.6 ignores it too).
    assert.equal(config.dataCiphersFallback, null);
    assert.deepEqual(config.notes, [
      'test.conf:22: cipher AES-256-CBC is not in data-ciphers: ignored for negotiation, as OpenVPN 2.6 does',
      'test.conf:23: explicit-exit-notify: ignored over TCP, as OpenVPN does',
    ]);
  });

  test('explicit-exit-notify is dropped over TCP, with a note, as OpenVPN does', () => {
    const config = parse(`${CLIENT}proto tcp\nexplicit-exit-notify 3\n`);
    assert.equal(config.explicitExitNotify, 0);
    assert.deepEqual(config.notes, ['test.conf:8: explicit-exit-notify: ignored over TCP, as OpenVPN does']);
    assert.equal(
      parse(`${CLIENT}proto tcp\nremote b.example 1194 udp\nexplicit-exit-notify 3\n`).explicitExitNotify,
      3,
    );
  });

  test('server pools: nopool, a /29, a /112 IPv6 pool', () => {
    const small = parse(`${P2P}topology subnet\nserver 10.8.0.8 255.255.255.248\nserver-ipv6 fd00::/112\n`);
    assert.deepEqual(small.server?.pool, { start: '10.8.0.10', end: '10.8.0.14' });
    assert.equal(small.serverIpv6?.poolStart, 'fd00::2');
    assert.equal(parse(`${P2P}topology subnet\nserver 10.8.0.0 255.255.0.0 nopool\n`).server?.pool, null);
  });

  test('a p2p tls-client with ifconfig in topology subnet, ifconfig-ipv6, tls-auth direction 1', () => {
    const config = parse(
      'tls-client\ndev tun\nremote 10.0.0.1\nca ca.crt\ncert client.crt\nkey client.key\n' +
        'topology subnet\nifconfig 10.1.0.2 255.255.255.0\nifconfig-ipv6 fd00::2/64 fd00::1\ntls-auth ta.key 1\n' +
        'cipher AES-128-GCM\nkeepalive 5 30\n',
    );
    assert.equal(config.role, 'p2p-tls-client');
    assert.equal(config.pull, false);
    assert.deepEqual(config.transport, { proto: 'udp', family: 'any', lport: 1194, local: null });
    assert.deepEqual(config.ifconfig, { local: '10.1.0.2', netmask: '255.255.255.0', remote: null });
    assert.deepEqual(config.ifconfigIpv6, { local: 'fd00::2', prefixLen: 64, remote: 'fd00::1' });
    assert.equal(config.tlsAuth?.direction, 1);
    // In p2p modes --cipher is the fallback for a peer that cannot negotiate.
    assert.equal(config.dataCiphersFallback, 'AES-128-GCM');
    assert.equal(config.pingRestart, 30);
  });

  test('tls-auth without a direction is bidirectional; a later key-direction sets it', () => {
    assert.equal(parse(`${P2P}tls-auth ta.key\n`).tlsAuth?.direction, null);
    assert.equal(parse(`${P2P}tls-auth ta.key\nkey-direction 0\n`).tlsAuth?.direction, 0);
  });

  test('ignore-unknown-option and setenv opt turn an unknown directive into a note', () => {
    const config = parse(`${CLIENT}ignore-unknown-option block-outside-dns\nblock-outside-dns\nsetenv opt foo bar\n`);
    assert.deepEqual(config.notes, [
      'test.conf:8: block-outside-dns: unknown, ignored (ignore-unknown-option)',
      'test.conf:9: foo: unknown, ignored (setenv opt)',
    ]);
    assert.equal(parse(`${CLIENT}setenv opt verb 4\n`).verb, 4);
  });

  test('an installer-style client: client and tls-client, setenv opt, ncp-ciphers', () => {
    const config = parse(
      `${CLIENT}tls-client\nsetenv opt block-outside-dns\nncp-ciphers AES-128-GCM\ncipher AES-128-GCM\nauth-nocache\n`,
    );
    assert.equal(config.role, 'client');
    assert.deepEqual(config.dataCiphers, ['AES-128-GCM']);
    assert.equal(config.dataCiphersFallback, null);
    assert.deepEqual(config.notes, [
      'test.conf:8: block-outside-dns: unknown, ignored (setenv opt)',
      'test.conf:9: ncp-ciphers: read as data-ciphers (renamed in OpenVPN 2.5)',
      'test.conf:11: auth-nocache: accepted, no effect: no password is ever cached',
    ]);
  });

  test('process directives are accepted with a note', () => {
    const lines = [
      'user nobody',
      'group nogroup',
      'mute 20',
      'auth-nocache',
      'float',
      'log /tmp/x',
      'disable-dco',
      'daemon',
      'writepid /run/x.pid',
    ];
    const config = parse(`${CLIENT}${lines.join('\n')}\n`);
    assert.deepEqual(
      config.notes.map((note) => note.split(': ')[0]),
      lines.map((_, i) => `test.conf:${7 + i}`),
    );
    assert.equal(
      config.notes[0],
      'test.conf:7: user: accepted, no effect: privileges are not dropped (the engine needs CAP_NET_ADMIN)',
    );
  });
});

describe('keepalive', () => {
  test('keepalive 10 120: ping 10 and ping-restart 120; a server doubles its own timeout and pushes both', () => {
    const client = parse(`${CLIENT}keepalive 10 120\n`);
    assert.deepEqual([client.ping, client.pingRestart, client.push], [10, 120, []]);
    const server = parse(`${SERVER}keepalive 10 120\n`);
    assert.deepEqual([server.ping, server.pingRestart], [10, 240]);
    assert.deepEqual(server.push.slice(-2), ['ping 10', 'ping-restart 120']);
  });

  test("keepalive's checks", () => {
    assert.equal(parseError(`${CLIENT}keepalive 0 120\n`), 'test.conf:7: "keepalive" parameters must be > 0');
    assert.equal(
      parseError(`${CLIENT}keepalive 10 15\n`),
      'test.conf:7: "keepalive": the timeout (15) must be at least twice the interval (10); 10 60 is recommended',
    );
    assert.equal(
      parseError(`${CLIENT}ping-restart 30\nkeepalive 10 60\n`),
      'test.conf:8: "keepalive" conflicts with "ping" and "ping-restart": it sets both',
    );
  });
});

describe('errors name the file, the line and what is expected', () => {
  const cases: [string, string][] = [
    [`${CLIENT}foo bar\n`, 'test.conf:7: unknown directive "foo"'],
    [`${CLIENT}crl-verify crl.pem\n`, 'test.conf:7: unknown directive "crl-verify"'],
    [`${CLIENT}keepalive 10\n`, 'test.conf:7: "keepalive" expects 2 parameters (keepalive INTERVAL TIMEOUT), got 1'],
    [`${CLIENT}nobind 1\n`, 'test.conf:7: "nobind" expects no parameters (nobind), got 1'],
    [
      `${CLIENT}remote a 1 udp x\n`,
      'test.conf:7: "remote" expects 1 to 3 parameters (remote HOST [PORT] [PROTO]), got 4',
    ],
    [
      `${SERVER}push route 10.9.0.0 255.255.255.0\n`,
      'test.conf:9: "push" expects 1 parameter (push "OPTION"), got 3; quote the pushed option: push "route 10.9.0.0 255.255.255.0"',
    ],
    [`${CLIENT}port 70000\n`, 'test.conf:7: "port" expects a port number (1 to 65535), got "70000"'],
    [`${CLIENT}verb 1o\n`, 'test.conf:7: "verb" expects a verbosity (0 to 11), got "1o"'],
    [`${CLIENT}ping -1\n`, 'test.conf:7: "ping" expects a number of seconds (0 to 2147483647), got "-1"'],
    [`${CLIENT}status-version 4\n`, 'test.conf:7: "status-version" expects a status file format (1 to 3), got "4"'],
    [`${CLIENT}route-ipv6 10.0.0.0/8\n`, 'test.conf:7: "route-ipv6" expects an IPv6 network/bits, got "10.0.0.0/8"'],
    [`${CLIENT}route 10.0.0.0 8\n`, 'test.conf:7: "route" expects the netmask as an IPv4 address, got "8"'],
    [
      `${CLIENT}ifconfig 10.0.0.1 peer\n`,
      'test.conf:7: "ifconfig" expects the remote address or netmask as an IPv4 address, got "peer"',
    ],
    [`${CLIENT}max-clients 0\n`, 'test.conf:7: "max-clients" expects a number of clients (1 to 16777214), got "0"'],
    [
      `${CLIENT}proto sctp\n`,
      'test.conf:7: bad protocol "sctp": expected udp, tcp, tcp-server or tcp-client, optionally with 4 or 6',
    ],
    [`${CLIENT}remote a 1 udp-client\n`, 'test.conf:7: "remote": bad protocol "udp-client" for host a'],
    [`${CLIENT}topology star\n`, 'test.conf:7: "topology" expects "net30", "p2p", "subnet", got "star"'],
    [`${CLIENT}remote-cert-tls peer\n`, 'test.conf:7: "remote-cert-tls" expects "server", "client", got "peer"'],
    [`${CLIENT}key-direction 2\n`, 'test.conf:7: "key-direction": key direction must be 0 or 1, got "2"'],
    [`${CLIENT}tls-auth ta.key both\n`, 'test.conf:7: "tls-auth": key direction must be 0 or 1, got "both"'],
    [
      `${CLIENT}tls-version-min 1.4\n`,
      'test.conf:7: "tls-version-min": unknown version "1.4": expected 1.0, 1.1, 1.2 or 1.3',
    ],
    [
      `${CLIENT}verify-x509-name a cn\n`,
      'test.conf:7: "verify-x509-name" expects "subject", "name", "name-prefix", got "cn"',
    ],
    [`${CLIENT}auth SHA3000\n`, 'test.conf:7: "auth": unknown digest "SHA3000": expected e.g. SHA256'],
    [`${CLIENT}cipher AES-256-XYZ\n`, 'test.conf:7: "cipher": unknown cipher "AES-256-XYZ"'],
    [`${CLIENT}data-ciphers AES-256-GCM:FOO\n`, 'test.conf:7: "data-ciphers": unknown cipher "FOO"'],
    [
      `${CLIENT}data-ciphers AES-256-GCM:AES-256-CBC\n`,
      'test.conf:7: "data-ciphers": AES-256-CBC is not carried by ovpn-dco (it carries AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305); remove it or mark it optional (?AES-256-CBC)',
    ],
    [
      `${CLIENT}data-ciphers-fallback AES-256-CBC\n`,
      'test.conf:7: fallback cipher AES-256-CBC is not supported: ovpn-dco carries AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305 (OpenVPN 2.6 turns DCO off for others)',
    ],
    [
      `${P2P}cipher AES-256-CBC\n`,
      'test.conf:7: fallback cipher AES-256-CBC is not supported: ovpn-dco carries AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305 (OpenVPN 2.6 turns DCO off for others)',
    ],
    [
      `${CLIENT}comp-lzo no\n`,
      'test.conf:7: "comp-lzo no" is not supported: ovpn-dco carries no compression framing (OpenVPN 2.6 turns DCO off for it); remove it on both ends',
    ],
    [
      `${CLIENT}compress\n`,
      'test.conf:7: "compress" is not supported: ovpn-dco carries no compression framing (OpenVPN 2.6 turns DCO off for it); remove it on both ends',
    ],
    [`${CLIENT}server 10.8.0.0 255.255.255.0\n`, 'test.conf:7: "server" and "client" cannot be used together'],
    [
      `${P2P}server 10.8.0.0 255.255.255.0\n`,
      'test.conf:7: topology net30 is not supported: ovpn-dco serves "topology subnet" only (OpenVPN 2.6 turns DCO off otherwise)',
    ],
    [
      `${P2P}topology subnet\nserver 10.8.0.1 255.255.255.0\n`,
      'test.conf:8: "server": network/netmask combination is invalid',
    ],
    [
      `${P2P}topology subnet\nserver 10.8.0.0 255.0.255.0\n`,
      'test.conf:8: "server": network/netmask combination is invalid',
    ],
    [
      `${P2P}topology subnet\nserver 10.8.0.0 255.255.255.252\n`,
      'test.conf:8: "server": with dev tun the subnet must be 255.255.255.248 (/29) or lower',
    ],
    [
      `${P2P}topology subnet\nserver 10.8.0.0 255.255.255.0 pool\n`,
      'test.conf:8: "server": "pool" is not a recognized flag: expected "nopool"',
    ],
    [
      `${P2P}server-ipv6 fd00::/48\n`,
      'test.conf:7: "server-ipv6": the prefix length must be 64 to 124, got "fd00::/48"',
    ],
    [`${SERVER}remote 10.0.0.1\n`, 'test.conf:9: "remote" cannot be used in server mode'],
    [`${SERVER}proto tcp-client\n`, 'test.conf:9: a server takes proto udp or tcp-server'],
    [`${P2P}client-to-client\n`, 'test.conf:7: "client-to-client" requires server mode ("server NETWORK NETMASK")'],
    [
      `${P2P}proto tcp\nremote 10.0.0.1\n`,
      'test.conf:7: "proto tcp" is ambiguous in this context: specify tcp-server or tcp-client',
    ],
    [`${P2P}nobind\n`, 'test.conf:7: "nobind" makes sense only with "remote"'],
    [`${CLIENT}local 10.0.0.2\nnobind\n`, 'test.conf:7: "local" and "nobind" cannot be used together'],
    [`${P2P}tls-client\n`, 'test.conf:7: specify only one of tls-server, tls-client (or client)'],
    [
      'dev tun\nca ca.crt\n',
      'test.conf: no TLS role: expected client, server, tls-server or tls-client (static-key mode is not supported)',
    ],
    [`${CLIENT}`.replace('dev tun\n', ''), 'test.conf: no "dev": expected dev tun (or tunN)'],
    [
      `${CLIENT}dev tap0\n`,
      'test.conf:7: "dev tap0" is not a tun device: ovpn-dco carries IP packets only (OpenVPN 2.6 turns DCO off otherwise)',
    ],
    [
      `${CLIENT}dev-type tap\n`,
      'test.conf:7: "dev tun" is not a tun device: ovpn-dco carries IP packets only (OpenVPN 2.6 turns DCO off otherwise)',
    ],
    [`${CLIENT}dev ovpn0\n`, 'test.conf:7: "dev ovpn0": the name does not tell the device type: add "dev-type tun"'],
    [
      CLIENT.replace('ca ca.crt\n', ''),
      'test.conf: no "ca": the CA certificate that peer certificates must chain to is required',
    ],
    [
      CLIENT.replace('key client.key\n', ''),
      'test.conf:5: both "cert" and "key" are required (username/password authentication is not supported)',
    ],
    [P2P.replace('dh none\n', ''), 'test.conf: no "dh": a TLS server needs "dh FILE" or "dh none" (ECDHE only)'],
    [`${P2P}tls-auth ta.key 0\ntls-crypt tc.key\n`, 'test.conf:8: "tls-auth" and "tls-crypt" are mutually exclusive'],
    [
      `${CLIENT}ifconfig-pool-persist ipp.txt\n`,
      'test.conf:7: "ifconfig-pool-persist" requires server mode ("server NETWORK NETMASK")',
    ],
    [
      `${CLIENT}config test.conf\n`,
      'test.conf:7: config files nested more than 10 deep: does test.conf include itself?',
    ],
  ];
  for (const [text, message] of cases) {
    test(message, () => assert.equal(parseError(text), message));
  }

  test('files that cannot be read or are not what they should be', () => {
    const files = { 'bad.key': 'hello\n', 'short.key': fixture('ta.key').replace(/^[0-9a-f]{32}\n/m, '') };
    const error = (text: string) => {
      try {
        parseOpenVpnArgs(['--config', 'test.conf'], io({ 'test.conf': text, ...files }));
      } catch (caught) {
        return (caught as Error).message;
      }
      return 'no error';
    };
    assert.equal(
      error(`${CLIENT}`.replace('ca.crt', 'nope.crt')),
      `test.conf:4: ca: cannot read ${join(FIXTURES, 'nope.crt')}: ENOENT`,
    );
    assert.equal(
      error(`${CLIENT}`.replace('ca.crt', 'client.key')),
      `test.conf:4: ca: ${join(FIXTURES, 'client.key')} holds no PEM certificate`,
    );
    assert.equal(
      error(`${CLIENT}`.replace('key client.key', 'key client.crt')),
      `test.conf:6: key: ${join(FIXTURES, 'client.crt')} holds no PEM private key`,
    );
    assert.equal(
      error(`${P2P}`.replace('dh none', 'dh ca.crt')),
      `test.conf:6: dh: ${join(FIXTURES, 'ca.crt')} holds no PEM DH parameters`,
    );
    assert.equal(
      error(`${CLIENT}tls-crypt bad.key\n`),
      `test.conf:7: tls-crypt: ${join(FIXTURES, 'bad.key')}: no "-----BEGIN OpenVPN Static key V1-----" line: not an OpenVPN static key`,
    );
    assert.equal(
      error(`${CLIENT}tls-auth short.key 1\n`),
      `test.conf:7: tls-auth: ${join(FIXTURES, 'short.key')}: 240 key bytes: expected 256 (2048 bits of hex)`,
    );
  });
});

describe('paths', () => {
  test("relative paths are relative to the working directory, not to the config file (OpenVPN's rule)", () => {
    const reads: string[] = [];
    const files = { 'sub/test.conf': `${P2P}status status.log\n` };
    const config = parseOpenVpnArgs(['--config', 'sub/test.conf'], io(files, reads));
    assert.deepEqual(
      reads,
      ['sub/test.conf', 'ca.crt', 'server.crt', 'server.key'].map((name) => join(FIXTURES, name)),
    );
    assert.equal(config.status?.path, join(FIXTURES, 'status.log'));
  });

  test('cd moves the working directory for later config files and for every key file', () => {
    const reads: string[] = [];
    const files = {
      'top.conf': 'cd sub\nconfig inner.conf\n',
      'sub/inner.conf': `${P2P}status status.log\n`,
      'sub/ca.crt': fixture('ca.crt'),
      'sub/server.crt': fixture('server.crt'),
      'sub/server.key': fixture('server.key'),
    };
    const config = parseOpenVpnArgs(['--config', 'top.conf'], io(files, reads));
    assert.deepEqual(
      reads,
      ['top.conf', 'sub/inner.conf', 'sub/ca.crt', 'sub/server.crt', 'sub/server.key'].map((name) =>
        join(FIXTURES, name),
      ),
    );
    assert.equal(config.cwd, join(FIXTURES, 'sub'));
    assert.equal(config.status?.path, join(FIXTURES, 'sub', 'status.log'));
    assert.deepEqual(config.configFiles, ['top.conf', 'inner.conf']);
  });
});

describe('static key file', () => {
  test("reads openvpn --genkey's file and writes the same text back", () => {
    const text = fixture('ta.key');
    const bytes = parseStaticKey(text, 'ta.key');
    assert.equal(bytes.length, 256);
    assert.equal(Buffer.from(bytes.subarray(0, 16)).toString('hex'), text.split('\n')[4]);
    assert.equal(formatStaticKey(bytes), text);
  });

  test('errors', () => {
    const text = fixture('ta.key');
    assert.throws(() => parseStaticKey(text.replace('-----END', '-----FIN'), 'k'), {
      message: 'k: no "-----END OpenVPN Static key V1-----" line after the key',
    });
    assert.throws(() => parseStaticKey(text.replace(/\n[0-9a-f]/, '\nz'), 'k'), {
      message: 'k:5: "z" in the key: expected hex digits',
    });
    assert.throws(() => parseStaticKey(text.replace(/-----END/, 'ab\n-----END'), 'k'), {
      message: 'k:21: more than 256 key bytes before the footer',
    });
  });
});

test('connect-retry, connect-retry-max and server-poll-timeout as OpenVPN reads them', () => {
  const defaults = parse(CLIENT);
  assert.deepEqual(
    [defaults.connectRetry, defaults.connectRetryMax, defaults.serverPollTimeout],
    [{ seconds: 1, max: 300 }, null, 120],
  );
  // The cap is never below the first pause.
  assert.deepEqual(parse(`${CLIENT}connect-retry 5 2\n`).connectRetry, { seconds: 5, max: 5 });
  const c = parse(`${CLIENT}connect-retry 2 60\nconnect-retry-max 4\nserver-poll-timeout 10\n`);
  assert.deepEqual([c.connectRetry, c.connectRetryMax, c.serverPollTimeout], [{ seconds: 2, max: 60 }, 4, 10]);
  assert.ok(
    describeOpenVpnConfig(c)
      .split('\n')
      .includes('connect-retry        2 s up to 60 s, 4 rounds, server-poll-timeout 10 s'),
    describeOpenVpnConfig(c),
  );
  assert.match(
    parseError(`${CLIENT}connect-retry-max 0\n`),
    /test\.conf:7: "connect-retry-max" expects a number of rounds \(1 to/,
  );
});
