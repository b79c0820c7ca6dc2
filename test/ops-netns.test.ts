/**
 * Operations end to end, as root, in throw-away namespaces op<pid>a and op<pid>b joined by a
 * veth: two daemons started as a service manager would (foreground, `--config-file`), so the
 * tunnel, its addresses, keys and routes come from the files alone; their /metrics scraped with
 * curl while ping runs through the tunnel (the counters rise with the traffic); the control
 * protocol version checked against a live daemon; READY=1 on a NOTIFY_SOCKET; a background
 * daemon's capped log, and what a clean exit leaves behind; the directory of a deleted namespace
 * removed by the next daemon to start.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Background,
  CONTROL_ROOT,
  DAEMON,
  type Ns,
  nsInode,
  pidsInNs,
  pingStats,
  run,
  runOk,
  waitUntil,
} from './helpers/behaviour-harness.js';
import { ask } from './helpers/control-socket.js';
import { missing } from './helpers/tools.js';

const KEY_FILE = fileURLToPath(new URL('../../tests/data64.key', import.meta.url));
const A = `op${process.pid}a`;
const B = `op${process.pid}b`;
const LINK = { [A]: '10.77.1.1', [B]: '10.77.1.2' };
const VPN = { [A]: '5.5.77.1', [B]: '5.5.77.2' };
const METRICS_PORT = '9477';
const skip = missing(['ip', 'ping', 'curl', 'python3', 'systemd-notify']);

/** The environment of a daemon not under a service manager, whatever runs this test. */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of ['JOURNAL_STREAM', 'INVOCATION_ID', 'NOTIFY_SOCKET', 'OVPN_METRICS_PORT']) {
    if (!(name in extra)) delete env[name];
  }
  return env;
}

class Daemon extends Background {
  constructor(ns: string, args: string[], env: NodeJS.ProcessEnv = plainEnv()) {
    super('ip', ['netns', 'exec', ns, 'env', ...envArgs(env), process.execPath, DAEMON, ...args]);
  }

  ready(what: string): Promise<string> {
    return this.waitLine((text, stream) => stream === 'stdout' && text === 'ready', `${what} to be ready`);
  }
}

/** `env -i` style arguments: the child gets exactly `env`. */
function envArgs(env: NodeJS.ProcessEnv): string[] {
  return ['-i', ...Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]))];
}

const dirOf = (ns: string) => join(CONTROL_ROOT, `netns-${nsInode(ns as Ns)}`);
const scrape = async (ns: string) =>
  runOk('ip', ['netns', 'exec', ns, 'curl', '-sf', `http://127.0.0.1:${METRICS_PORT}/metrics`]);

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line !== undefined, `${name}{${labels}} in\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('operations in namespaces: config file, metrics under traffic, version, readiness, logs and clean exit', {
  skip,
}, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'ovpn-ops-'));
  const daemons: Daemon[] = [];
  const start = (ns: string, args: string[], env?: NodeJS.ProcessEnv) => {
    const d = new Daemon(ns, args, env);
    daemons.push(d);
    return d;
  };
  const inodes: number[] = [];
  t.after(async () => {
    for (const d of daemons) await d.stop('SIGTERM');
    for (const ns of [A, B]) {
      if (!existsSync(`/run/netns/${ns}`)) continue;
      for (const pid of pidsInNs(nsInode(ns as Ns))) process.kill(pid, 'SIGKILL');
      await run('ip', ['netns', 'del', ns]);
    }
    for (const inode of inodes) rmSync(join(CONTROL_ROOT, `netns-${inode}`), { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });
  for (const ns of [A, B]) {
    await runOk('ip', ['netns', 'add', ns]);
    inodes.push(nsInode(ns as Ns));
    await runOk('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const veth = [`opv${process.pid}a`, `opv${process.pid}b`] as const;
  await runOk('ip', ['-n', A, 'link', 'add', veth[0], 'type', 'veth', 'peer', 'name', veth[1], 'netns', B]);
  for (const [i, ns] of [A, B].entries()) {
    await runOk('ip', ['-n', ns, 'addr', 'add', `${LINK[ns]}/24`, 'dev', veth[i]!]);
    await runOk('ip', ['-n', ns, 'link', 'set', veth[i]!, 'up']);
  }

  // The tunnel from config files alone: addresses, peer, key, and a kernel route via the peer.
  for (const [direction, ns] of [A, B].entries()) {
    const other = ns === A ? B : A;
    const config = {
      mode: 'P2P',
      addresses: [`${VPN[ns]}/24`],
      peers: [
        {
          id: 1,
          'remote-ipv4': LINK[other],
          'remote-port': 1,
          'local-port': 1,
          'vpn-ipv4': VPN[other],
          keys: [{ 'key-file': KEY_FILE, direction, 'cipher-alg': 'AES-256-GCM' }],
        },
      ],
      routes: [{ prefix: '10.123.0.0/16', via: VPN[other] }],
    };
    writeFileSync(join(tmp, `${ns}.conf`), JSON.stringify(config));
  }
  const [da, db] = [A, B].map((ns) =>
    start(ns, [
      '--ifname',
      'tun0',
      '--foreground',
      '--config-file',
      join(tmp, `${ns}.conf`),
      '--metrics-port',
      METRICS_PORT,
    ]),
  ) as [Daemon, Daemon];
  await da.ready(`daemon in ${A}`);
  await db.ready(`daemon in ${B}`);

  await t.test('the config file made the tunnel; the log went to stderr as logfmt', async () => {
    assert.match(da.stderr, /level=info msg="peer from config file" ifname=tun0 peer=1 keys=1 routes=0\n/);
    assert.match(da.stderr, /level=info msg="interface up" ifname=tun0 mode=P2P pid=\d+ peers=1\n/);
    assert.match(await runOk('ip', ['-n', A, 'route', 'show', '10.123.0.0/16']), /via 5\.5\.77\.2 dev tun0/);
    assert.match(await runOk('ip', ['-n', A, 'addr', 'show', 'tun0']), /inet 5\.5\.77\.1\/24/);
    assert.ok(!existsSync(join(dirOf(A), 'tun0.log')), 'no log file in the foreground');
  });

  await t.test('metrics: counters rise with the traffic; loopback only', async () => {
    const labels = 'ifname="tun0",peer_id="1"';
    const before = await scrape(A);
    const vpnTx = (text: string) => metric(text, 'ovpn_peer_vpn_tx_packets_total', labels);
    const ping = new Background('ip', ['netns', 'exec', A, 'ping', '-c', '40', '-i', '0.05', '-W', '2', VPN[B]!]);
    // Scraped while the pings flow: the counter moves between two scrapes, not only at the end.
    const first = await waitUntil('a scrape during the ping to show traffic', async () => {
      const text = await scrape(A);
      return vpnTx(text) > vpnTx(before) ? text : null;
    });
    const second = await waitUntil('a later scrape to show more', async () => {
      const text = await scrape(A);
      return vpnTx(text) > vpnTx(first) ? text : null;
    });
    assert.ok(ping.running, 'both scrapes came while the ping still ran');
    await ping.exited;
    assert.equal(pingStats(ping.stdout).received, 40, ping.stdout);
    const after = await scrape(A);
    assert.ok(vpnTx(after) > vpnTx(second));
    for (const name of [
      'ovpn_peer_vpn_tx_packets_total',
      'ovpn_peer_vpn_rx_packets_total',
      'ovpn_peer_link_tx_packets_total',
    ]) {
      assert.ok(metric(after, name, labels) - metric(before, name, labels) >= 40, `${name} rose by the 40 pings`);
    }
    const txBytes =
      metric(after, 'ovpn_peer_link_tx_bytes_total', labels) - metric(before, 'ovpn_peer_link_tx_bytes_total', labels);
    // Each ping: 84 bytes of IP, sealed with a 4-byte header, 4-byte packet-id and 16-byte tag.
    assert.ok(txBytes >= 40 * (84 + 24), `link bytes rose by at least 40 sealed pings (${txBytes})`);
    assert.equal(metric(after, 'ovpn_peers', 'ifname="tun0",mode="P2P"'), 1);
    assert.equal(metric(after, 'ovpn_peer_drops_total', `${labels},reason="auth"`), 0);
    assert.match(after, /^process_cpu_seconds_total [\d.]+$/m);
    const fromB = await run('ip', [
      'netns',
      'exec',
      B,
      'curl',
      '-sf',
      '-m',
      '2',
      `http://${LINK[A]}:${METRICS_PORT}/metrics`,
    ]);
    assert.notEqual(fromB.code, 0, 'the metrics port is not reachable from the veth');
    const notFound = await run('ip', [
      'netns',
      'exec',
      A,
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${METRICS_PORT}/`,
    ]);
    assert.equal(notFound.stdout, '404');
  });

  await t.test('a client of another protocol version is refused by the live daemon, and logged', async () => {
    const reply = await ask(join(dirOf(A), 'tun0.sock'), { id: 5, cmd: 'hello', version: 99 });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'EPROTO');
    assert.match(
      reply.error.message,
      /client speaks control protocol version 99, the daemon of tun0 \(pid \d+\) speaks version 1/,
    );
    await da.waitLine(
      (l) => l.includes('level=warn msg="client of another control protocol version refused"'),
      'the warning',
    );
  });

  await t.test('READY=1 with the daemon pid reaches NOTIFY_SOCKET', async () => {
    const socketPath = join(tmp, 'notify.sock');
    const receiver = new Background('python3', [
      '-c',
      'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\n' +
        'while True:\n m=s.recv(4096).decode()\n print(m.replace("\\n"," "),flush=True)\n if "READY=1" in m: break\n',
      socketPath,
    ]);
    await receiver.waitLine((l) => l === 'bound', 'the notify receiver');
    const d = start(A, ['--ifname', 'tun1', '--foreground'], plainEnv({ NOTIFY_SOCKET: socketPath }));
    await d.ready('daemon tun1');
    const line = await receiver.waitLine((l) => l.includes('READY=1'), 'READY=1');
    const pid = Number(/pid=(\d+)/.exec(d.stderr)?.[1]);
    assert.match(line, new RegExp(`MAINPID=${pid}\\b`));
    await receiver.stop();
    await runOk('ip', ['-n', A, 'link', 'del', 'tun1']);
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    assert.ok(!existsSync(join(dirOf(A), 'tun1.sock')), 'ip link del: socket removed');
  });

  await t.test('background daemon: capped log file; a clean exit removes the socket and keeps the log', async () => {
    const dir = dirOf(B);
    const d = start(B, ['--ifname', 'tun1', '--log-level', 'debug'], plainEnv({ OVPN_LOG_MAX_BYTES: '4096' }));
    await d.ready('background daemon tun1');
    for (let i = 0; i < 60; i++) await ask(join(dir, 'tun1.sock'), { id: i, cmd: 'peer-get', peer: { id: 77 } });
    const log = join(dir, 'tun1.log');
    assert.ok(statSync(log).size <= 4096, 'log within its cap');
    assert.match(
      readFileSync(`${log}.1`, 'utf8'),
      /level=debug msg="request refused" ifname=tun1 cmd=peer-get code=ENOENT/,
    );
    assert.equal(d.stderr, '', 'nothing on stderr when not in the foreground');
    await d.stop('SIGTERM');
    assert.equal(d.child.exitCode, 0);
    assert.ok(!existsSync(join(dir, 'tun1.sock')), 'socket removed');
    assert.match(readFileSync(log, 'utf8'), /msg="interface closed" ifname=tun1 reason="stopped by SIGTERM"\n$/);
  });

  await t.test('the directory of a deleted namespace is removed by the next daemon to start', async () => {
    const dirB = dirOf(B);
    await db.stop('SIGTERM');
    assert.equal(db.child.exitCode, 0);
    assert.ok(existsSync(join(dirB, 'tun1.log')), 'the log stays while the namespace exists');
    await runOk('ip', ['netns', 'del', B]);
    await waitUntil('namespace B to be gone', async () => !(await run('ip', ['netns', 'list'])).stdout.includes(B));
    const d = start(A, ['--ifname', 'tun2', '--foreground']);
    await d.ready('daemon tun2');
    assert.ok(!existsSync(dirB), `${dirB} removed`);
    assert.ok(existsSync(dirOf(A)), 'the directory of a live namespace stays');
    const deleted = await ask(join(dirOf(A), 'tun2.sock'), { id: 1, cmd: 'iface-del' });
    assert.equal(deleted.ok, true);
    assert.deepEqual(await d.exited, { code: 0, signal: null });
  });

  await t.test('a config file with a mistake: the daemon names it and exits 1 without an interface', async () => {
    writeFileSync(
      join(tmp, 'bad2.conf'),
      JSON.stringify({ peers: [{ id: 1, 'remote-ipv4': '10.77.1.2', 'remote-port': 70000, 'local-port': 1 }] }),
    );
    const d = start(A, ['--ifname', 'tun3', '--foreground', '--config-file', join(tmp, 'bad2.conf')]);
    const { code } = await d.exited;
    assert.equal(code, 1);
    assert.match(d.stdout, /remote-port/);
    assert.notEqual((await run('ip', ['-n', A, 'link', 'show', 'tun3'])).code, 0, 'no tun3 left');
  });

  await t.test('a daemon that fails to start leaves no empty log behind (the launcher opened it)', async () => {
    for (const [name, args, reason] of [
      ['tun5', ['--mode', 'XX'], /mode must be P2P or MP, got XX/],
      ['tun6', ['--config-file', join(tmp, 'none.conf')], /none\.conf: file: cannot read it as JSON/],
    ] as const) {
      const log = join(dirOf(A), `${name}.log`);
      writeFileSync(log, '', { mode: 0o600 });
      const d = start(A, ['--ifname', name, ...args]);
      assert.equal((await d.exited).code, 1);
      assert.match(d.stdout, reason);
      assert.ok(!existsSync(log), `${name}.log removed`);
    }
  });
});
