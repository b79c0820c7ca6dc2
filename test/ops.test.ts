/**
 * Operations without root (issue 15): the daemon's log lines and their capped file, the
 * Prometheus text, the config file's checks, what a control request leaves in the log (never key
 * bytes), timestamps on notifications, and the protocol version met on both sides, with a real
 * ControlServer on the in-memory edges and fake daemons of other versions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PROTOCOL_VERSION } from '../src/control/protocol.js';
import { ControlServer } from '../src/control/server.js';
import { formatLogLine, type Log, type LogFields, parseLogLevel } from '../src/core/log.js';
import { readInterfaceConfig } from '../src/daemon/config-file.js';
import { CappedLogFile, Logger } from '../src/daemon/log.js';
import { processSnapshot, renderMetrics } from '../src/daemon/metrics.js';
import { OvpnInterface } from '../src/device/ovpn-interface.js';
import { MemoryNetwork } from '../src/edge/memory.js';
import { missing } from './helpers/tools.js';

const KEY_FILE = fileURLToPath(new URL('../../tests/data64.key', import.meta.url));
const UNIT = fileURLToPath(new URL('../../systemd/ovpn-dco@.service', import.meta.url));
const RUN_DIR = mkdtempSync(join(tmpdir(), 'ovpn-ops-'));
// The client finds sockets under OVPN_DCO_RUN_DIR; paths.js reads it when first imported.
process.env.OVPN_DCO_RUN_DIR = RUN_DIR;
const { ControlClient, ControlError } = await import('../src/control/client.js');
const { socketPath } = await import('../src/control/paths.js');
process.on('exit', () => rmSync(RUN_DIR, { recursive: true, force: true }));

/** A Log that keeps its lines as text, as the daemon would write them. */
function capture(): { log: Log; lines: string[] } {
  const lines: string[] = [];
  const at = (level: 'error' | 'warn' | 'info' | 'debug') => (msg: string, fields?: LogFields) =>
    lines.push(formatLogLine(new Date(0), level, msg, fields));
  return { log: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }, lines };
}

test('log lines: logfmt, values quoted only when they must be, levels by name', () => {
  const line = formatLogLine(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), 'warn', 'peer floated', {
    peer: 3,
    remote: '10.0.0.2',
    note: 'a "b"=c',
    empty: '',
    gone: undefined,
  });
  assert.equal(
    line,
    'time=2026-01-02T03:04:05.006Z level=warn msg="peer floated" peer=3 remote=10.0.0.2 note="a \\"b\\"=c" empty=""',
  );
  assert.equal(
    formatLogLine(new Date(0), 'info', 'two\nlines'),
    'time=1970-01-01T00:00:00.000Z level=info msg="two\\nlines"',
  );
  assert.equal(parseLogLevel('DEBUG'), 'debug');
  assert.throws(
    () => parseLogLevel('loud', '--log-level'),
    /--log-level must be one of error, warn, info, debug, got "loud"/,
  );
});

test('log file: capped, rotated to .1, below-threshold lines left out', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tun0.log');
  const log = new Logger(new CappedLogFile(path, 300), 'info', { ifname: 'tun0' }, () => new Date(0));
  for (let i = 0; i < 20; i++) log.info('line', { n: i });
  log.debug('not shown');
  log.close();
  const current = readFileSync(path, 'utf8');
  const previous = readFileSync(`${path}.1`, 'utf8');
  assert.ok(statSync(path).size <= 300 && statSync(`${path}.1`).size <= 300, 'both files within the cap');
  assert.match(current, /level=info msg=line ifname=tun0 n=19\n$/);
  assert.ok(!current.includes('not shown'));
  const numbers = [...`${previous}${current}`.matchAll(/ n=(\d+)/g)].map((m) => Number(m[1]));
  assert.deepEqual(
    numbers,
    Array.from({ length: numbers.length }, (_, i) => 20 - numbers.length + i),
    'no gap',
  );
  assert.ok(!existsSync(`${path}.2`));
});

test('log file: a log that cannot be written falls back to stderr and never throws', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-log-'));
  const file = new CappedLogFile(join(dir, 'tun0.log'), 100);
  const log = new Logger(file, 'info', {}, () => new Date(0));
  log.info('x'.repeat(80));
  rmSync(dir, { recursive: true, force: true });
  const written: string[] = [];
  t.mock.method(process.stderr, 'write', (text: string) => written.push(text) > 0);
  assert.doesNotThrow(() => log.info('after the directory went'), 'rotation into a removed directory');
  t.mock.restoreAll();
  assert.match(written.join(''), /^log file .*tun0\.log: ENOENT[^\n]*\ntime=.* msg="after the directory went"\n$/);
  log.close();
  log.info('after close: dropped');
});

function memoryInterface(name = 'tun0') {
  const net = new MemoryNetwork();
  const iface = OvpnInterface.create({ name, edges: net.host('10.0.0.1').edges });
  iface.newPeer({ id: 1, localPort: 1194, remoteIpv4: '10.0.0.2', remotePort: 1194 });
  return iface;
}

test('metrics: exposition text with one HELP/TYPE per family, per-peer counters, drops by reason, process', () => {
  const iface = memoryInterface();
  try {
    const peer = { ...iface.getPeer(1), vpnRxBytes: 1234, drops: { ...iface.getPeer(1).drops, replay: 5 } };
    const text = renderMetrics({
      info: { ...iface.info(), ifname: 'tun"0' },
      peers: [peer],
      control: { notificationsDropped: 2, keySwaps: 1, keySwapNotifications: 0, subscribers: 0 },
      process: processSnapshot(),
    });
    assert.match(text, /^ovpn_peer_vpn_rx_bytes_total\{ifname="tun\\"0",peer_id="1"\} 1234$/m);
    assert.match(text, /^ovpn_peer_link_tx_packets_total\{ifname="tun\\"0",peer_id="1"\} 0$/m);
    assert.match(text, /^ovpn_peer_drops_total\{ifname="tun\\"0",peer_id="1",reason="replay"\} 5$/m);
    assert.match(text, /^ovpn_interface_drops_total\{ifname="tun\\"0",reason="unknown-peer"\} 0$/m);
    assert.match(text, /^ovpn_tx_queue_drops_total\{ifname="tun\\"0",reason="codel"\} 0$/m);
    assert.match(text, /^ovpn_peers\{ifname="tun\\"0",mode="P2P"\} 1$/m);
    assert.match(text, /^ovpn_key_swaps_total\{ifname="tun\\"0"\} 1$/m);
    assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
    assert.match(text, /^process_resident_memory_bytes [1-9]\d*$/m);
    const types = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
    assert.equal(new Set(types).size, types.length, 'each family declared once');
    for (const line of text.trimEnd().split('\n')) {
      assert.match(line, /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[^}]*\})? -?\d+(\.\d+)?(e[-+]?\d+)?)$/, line);
    }
  } finally {
    iface.destroy();
  }
});

test('config file: checked with the protocol schema, keys read by direction, errors name the place', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-conf-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (value: unknown) => {
    const path = join(dir, 'tun0.conf');
    writeFileSync(path, JSON.stringify(value));
    return path;
  };
  const peer = { id: 1, 'remote-ipv4': '10.9.0.2', 'remote-port': 1, 'local-port': 1, 'vpn-ipv4': '5.5.5.2' };
  const key = { 'key-file': KEY_FILE, direction: 1, 'cipher-alg': 'AES-256-GCM', 'key-id': 2 };
  const config = readInterfaceConfig(
    write({ mode: 'P2P', addresses: ['5.5.5.1/24'], peers: [{ ...peer, keys: [key], routes: ['10.1.0.0/16'] }] }),
  );
  const raw = Buffer.from(readFileSync(KEY_FILE, 'utf8').replace(/\s+/g, ''), 'base64');
  assert.deepEqual(config.peers[0]?.peer, {
    id: 1,
    remoteIpv4: '10.9.0.2',
    remotePort: 1,
    localPort: 1,
    vpnIpv4: '5.5.5.2',
  });
  const keyconf = config.peers[0]?.keys[0];
  assert.equal(keyconf?.keyId, 2);
  assert.equal(keyconf?.slot, 'primary');
  assert.deepEqual(
    Buffer.from(keyconf?.encryptDir.cipherKey ?? []),
    raw.subarray(32, 64),
    'direction 1 encrypts with the second key',
  );
  assert.deepEqual(Buffer.from(keyconf?.decryptDir.cipherKey ?? []), raw.subarray(0, 32));
  assert.deepEqual(config.peers[0]?.routes, ['10.1.0.0/16']);

  const refused = (value: unknown, pattern: RegExp) => assert.throws(() => readInterfaceConfig(write(value)), pattern);
  refused(
    { peers: [{ ...peer, 'remote-port': 'one' }] },
    /tun0\.conf: peers\[0\]: remote-port must be an integer, got "one"/,
  );
  refused(
    { peers: [{ ...peer, keys: [{ ...key, direction: 2 }] }] },
    /peers\[0\]\.keys\[0\]\.direction: must be 0 or 1/,
  );
  refused(
    { peers: [{ ...peer, keys: [{ ...key, 'cipher-alg': 'aes' }] }] },
    /keys\[0\]\.cipher-alg: must be one of AES-128-GCM/,
  );
  refused(
    { peers: [{ ...peer, keys: [{ ...key, 'key-file': 'nope.key' }] }] },
    /keys\[0\]\.key-file: cannot read .*nope\.key/,
  );
  refused(
    { peer: [] },
    /tun0\.conf: file: unknown attribute "peer": expected one of mode, mtu, addresses, peers, routes/,
  );
  refused({ routes: [{ prefix: '10.0.0.0/8', gw: 'x' }] }, /routes\[0\]: unknown attribute "gw"/);
  refused({ mode: 'p2p' }, /mode: must be "P2P" or "MP"/);
});

async function withServer(t: { after(fn: () => unknown): void }, name: string, log?: Log) {
  const iface = memoryInterface(name);
  const server = new ControlServer(iface, socketPath(name, true), () => iface.destroy(), log);
  await server.listen();
  t.after(async () => {
    iface.destroy();
    await server.close('test over', 100);
  });
  return { iface, server };
}

test('control: changes are logged with their values and never key bytes; notifications carry a time', async (t) => {
  const { log, lines } = capture();
  const { iface, server } = await withServer(t, 'opl0', log);
  const client = await ControlClient.connect('opl0');
  t.after(() => client.close());
  const notifications: Record<string, unknown>[] = [];
  const got = new Promise<void>((resolve) =>
    client.subscribe((n) => {
      notifications.push(n);
      resolve();
    }),
  );
  const cipherKey = Buffer.alloc(32, 0xab).toString('base64');
  const dir = { 'cipher-key': cipherKey, 'nonce-tail': Buffer.alloc(8, 0xcd).toString('base64') };
  // A second, different key: installing the same bytes twice would (rightly) warn.
  const dir2 = { ...dir, 'cipher-key': Buffer.alloc(32, 0x5a).toString('base64') };
  await client.request('key-new', {
    keyconf: {
      'peer-id': 1,
      slot: 'primary',
      'key-id': 3,
      'cipher-alg': 'AES-256-GCM',
      'encrypt-dir': dir,
      'decrypt-dir': dir,
    },
  });
  await client.request('key-new', {
    keyconf: {
      'peer-id': 1,
      slot: 'secondary',
      'key-id': 4,
      'cipher-alg': 'aes-gcm',
      'encrypt-dir': dir2,
      'decrypt-dir': dir2,
    },
  });
  await client.request('key-swap', { keyconf: { 'peer-id': 1 } });
  assert.equal(server.stats().keySwaps, 1, 'key swaps counted for the metrics');
  await client.request('peer-set', { peer: { id: 1, 'keepalive-interval': 5, 'keepalive-timeout': 30 } });
  await assert.rejects(client.request('peer-get', { peer: { id: 9 } }), /cannot find peer/);
  const before = Date.now();
  iface.delPeer(1);
  await got;
  assert.ok(
    lines.some((l) => l.includes('msg="key installed" ifname=opl0 peer=1 slot=primary key-id=3 cipher=AES-256-GCM')),
    lines.join('\n'),
  );
  assert.ok(lines.some((l) => l.endsWith('msg="keys swapped" ifname=opl0 peer=1')));
  assert.ok(
    lines.some((l) => l.endsWith('msg="key installed" ifname=opl0 peer=1 slot=secondary key-id=4 cipher=aes-gcm')),
  );
  assert.ok(
    lines.some((l) => l.includes('msg="peer changed" ifname=opl0 peer=1 changed=keepalive-interval,keepalive-timeout')),
  );
  assert.ok(lines.some((l) => /level=debug msg="request refused" .*cmd=peer-get code=ENOENT field=id/.test(l)));
  for (const secret of [cipherKey, dir2['cipher-key'], 'q6ur', 'WlpaWlpa', Buffer.alloc(32, 0xab).toString('hex')]) {
    assert.ok(!lines.join('\n').includes(secret), 'no key bytes in the log');
  }
  const ntf = notifications[0] as { ntf: string; time: string };
  assert.equal(ntf.ntf, 'peer-del-ntf');
  assert.match(ntf.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(ntf.time) - before) < 5_000);
});

test('control protocol version: hello agrees, another version is refused with EPROTO naming both', async (t) => {
  await withServer(t, 'opv0');
  const client = await ControlClient.connect('opv0');
  const hello = await client.request('hello', { version: PROTOCOL_VERSION });
  assert.equal(hello.version, PROTOCOL_VERSION);
  await assert.rejects(
    client.request('hello', { version: PROTOCOL_VERSION + 1 }),
    (error: InstanceType<typeof ControlError>) => {
      assert.equal(error.code, 'EPROTO');
      assert.match(
        error.message,
        new RegExp(
          `client speaks control protocol version ${PROTOCOL_VERSION + 1}, the daemon of opv0 \\(pid \\d+\\) speaks version ${PROTOCOL_VERSION}`,
        ),
      );
      return true;
    },
  );
  client.close();
});

/** A fake daemon at `name`'s socket answering every request with `reply(request)`. */
async function fakeDaemon(name: string, reply: (request: { id: number; cmd: string }) => object): Promise<Server> {
  mkdirSync(join(socketPath(name, true), '..'), { recursive: true });
  const server = createServer((socket) => {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        const request = JSON.parse(line) as { id: number; cmd: string };
        socket.write(`${JSON.stringify({ id: request.id, ...reply(request) })}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath(name), resolve));
  return server;
}

test('control protocol version: the client says clearly when the daemon is older or newer', async (t) => {
  const older = await fakeDaemon('opold', (request) => ({
    ok: false,
    error: { code: 'EINVAL', message: `unknown cmd "${request.cmd}": expected one of iface-get, ...`, field: 'cmd' },
  }));
  const newer = await fakeDaemon('opnew', () => ({
    ok: false,
    error: {
      code: 'EPROTO',
      message: 'client speaks control protocol version 1, the daemon of opnew (pid 42) speaks version 2',
    },
  }));
  t.after(() => {
    older.close();
    newer.close();
  });
  await assert.rejects(ControlClient.connect('opold'), (error: InstanceType<typeof ControlError>) => {
    assert.equal(error.code, 'EPROTO');
    assert.match(
      error.message,
      /^the daemon of opold predates control protocol versions, this client speaks version 1: /,
    );
    assert.match(error.message, /re-create the interface with this one \(ovpn-cli del_iface opold\)$/);
    return true;
  });
  await assert.rejects(
    ControlClient.connect('opnew'),
    /speaks version 2: use the ovpn-cli of the installation that started the daemon/,
  );
});

test('systemd unit: systemd-analyze verify finds nothing wrong once the daemon is where ExecStart looks', {
  skip: missing(['systemd-analyze'], false),
}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const unit = readFileSync(UNIT, 'utf8');
  assert.match(unit, /^Type=notify$/m);
  assert.match(unit, /^NotifyAccess=all$/m);
  assert.match(unit, /^ExecStart=ovpn-dco-daemon --ifname %i --foreground --config-file \/etc\/ovpn-dco\/%i\.conf$/m);
  // The installed package puts ovpn-dco-daemon on systemd's search path; here it is node and the file.
  const daemon = fileURLToPath(new URL('../src/daemon/main.js', import.meta.url));
  writeFileSync(
    join(dir, 'ovpn-dco@.service'),
    unit.replace('ExecStart=ovpn-dco-daemon', `ExecStart=${process.execPath} ${daemon}`),
  );
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', 'ovpn-dco@tun0.service'], {
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
    encoding: 'utf8',
  });
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '');
  assert.equal(result.status, 0);
});
