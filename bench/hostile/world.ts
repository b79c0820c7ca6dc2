/**
 * Two throw-away network namespaces for the hostile runs: a server and a client joined by a
 * veth pair, a real ovpn-dco daemon in each (started with ovpn-cli), the tunnel keyed through
 * the control socket, and what the runs measure: the daemons' counters, RSS, open fds and the
 * namespace's UDP counters from /proc/net/snmp. Names are `hx<pid>` plus a serial, so runs
 * never collide with other tests; teardown removes the daemons, namespaces and socket dirs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyConfig } from '../../src/core/index.js';
import { pidAlive as alive, pingStats, run, runOk, waitUntil } from '../../test/helpers/behaviour-harness.js';
import { keyPair } from '../../test/helpers/keys.js';
import { ControlLine } from './control-line.js';

export { alive, keyPair, pingStats, run, runOk, waitUntil };

export const CLI = fileURLToPath(new URL('../../src/cli/ovpn-cli.js', import.meta.url));
const CONTROL_ROOT = process.env.OVPN_DCO_RUN_DIR ?? '/run/ovpn-dco';
export const PORT = 1194;

/** A worker script of this folder run inside a namespace; resolves with its `RESULT` line. */
export async function worker<T>(ns: string, script: string, args: string[], timeoutMs = 600_000): Promise<T> {
  const path = fileURLToPath(new URL(`./${script}`, import.meta.url));
  const out = await runOk('ip', ['netns', 'exec', ns, process.execPath, path, ...args], timeoutMs);
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`${script} printed no RESULT:\n${out}`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}

/** A background process started in a namespace (ping during a flood). */
export function background(ns: string, args: string[]): { child: ChildProcess; output: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  return { child, output: new Promise((resolve) => child.on('close', () => resolve(out))) };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The key-new request for a config. */
export function keyconf(peerId: number, slot: 'primary' | 'secondary', config: KeyConfig) {
  const dir = (m: KeyConfig['encrypt']) => ({
    'cipher-key': Buffer.from(m.key).toString('base64'),
    'nonce-tail': Buffer.from(m.nonceTail).toString('base64'),
  });
  return {
    keyconf: {
      'peer-id': peerId,
      slot,
      'key-id': config.keyId,
      'cipher-alg': config.cipher,
      'encrypt-dir': dir(config.encrypt),
      'decrypt-dir': dir(config.decrypt),
    },
  };
}

export interface Side {
  ns: string;
  addr: string;
  vpn: string;
  control: ControlLine;
  pid: number;
  socketPath: string;
}

export type UdpCounters = Record<string, number>;

let serial = 0;

export class World {
  /** Interfaces started besides the two tun0 (teardown deletes them too). */
  readonly extra: Side[] = [];

  private constructor(
    readonly mode: 'P2P' | 'MP',
    readonly server: Side,
    readonly client: Side,
  ) {}

  /** Namespaces, link, daemons, peer 1 on both sides keyed with key-id 0, addresses up. */
  static async create(mode: 'P2P' | 'MP'): Promise<World> {
    const id = `hx${process.pid}n${serial++}`;
    const ns = { s: `${id}s`, c: `${id}c` };
    await runOk('ip', ['netns', 'add', ns.s]);
    await runOk('ip', ['netns', 'add', ns.c]);
    await runOk('ip', ['-n', ns.s, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.c]);
    for (const [n, addr] of [
      [ns.s, '10.77.0.1/24'],
      [ns.c, '10.77.0.2/24'],
    ] as const) {
      await runOk('ip', ['-n', n, 'addr', 'add', addr, 'dev', 'eth0']);
      await runOk('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      await runOk('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    const server = await World.side(ns.s, mode, '10.77.0.1', '5.5.7.1');
    const client = await World.side(ns.c, 'P2P', '10.77.0.2', '5.5.7.2');
    const world = new World(mode, server, client);
    const [sk, ck] = keyPair('AES-256-GCM', 0);
    await world.addPeer(server, 1, client.addr, client.vpn);
    await world.addPeer(client, 1, server.addr, server.vpn);
    await server.control.ok('key-new', keyconf(1, 'primary', sk));
    await client.control.ok('key-new', keyconf(1, 'primary', ck));
    for (const side of [server, client]) {
      await runOk('ip', ['-n', side.ns, 'addr', 'add', `${side.vpn}/24`, 'dev', 'tun0']);
      await runOk('ip', ['-n', side.ns, 'link', 'set', 'tun0', 'up']);
    }
    return world;
  }

  /** Starts the daemon of interface `ifname` in namespace `ns` and connects to its control socket. */
  static async side(ns: string, mode: 'P2P' | 'MP', addr: string, vpn: string, ifname = 'tun0'): Promise<Side> {
    await runOk('ip', ['netns', 'exec', ns, process.execPath, CLI, 'new_iface', ifname, mode]);
    const socketPath = join(CONTROL_ROOT, `netns-${statSync(`/run/netns/${ns}`).ino}`, `${ifname}.sock`);
    const control = await ControlLine.open(socketPath);
    const info = await control.ok('iface-get');
    return { ns, addr, vpn, control, pid: info.pid as number, socketPath };
  }

  async addPeer(side: Side, id: number, remote: string, vpn: string, remotePort = PORT): Promise<void> {
    const peer: Record<string, unknown> = {
      id,
      'remote-ipv4': remote,
      'remote-port': remotePort,
      'local-port': PORT,
    };
    if (side === this.server && this.mode === 'MP') peer['vpn-ipv4'] = vpn;
    await side.control.ok('peer-new', { peer });
  }

  /** The namespace's UDP line of /proc/net/snmp (InDatagrams, InErrors, RcvbufErrors, ...). */
  async udp(side: Side): Promise<UdpCounters> {
    const text = await runOk('ip', ['netns', 'exec', side.ns, 'cat', '/proc/net/snmp']);
    const [names, values] = text.split('\n').filter((l) => l.startsWith('Udp: '));
    const keys = names!.split(/\s+/).slice(1);
    const nums = values!.split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(keys.map((k, i) => [k, nums[i]!]));
  }

  async ping(from: Side, to: Side, count: number): Promise<{ sent: number; received: number }> {
    return pingStats((await pingIn(from.ns, to.vpn, count, 0.05)).stdout);
  }

  async teardown(): Promise<void> {
    for (const side of this.extra) {
      if (alive(side.pid)) await side.control.request('iface-del');
      side.control.close();
    }
    for (const side of [this.server, this.client]) {
      if (alive(side.pid)) await side.control.request('iface-del');
      side.control.close();
    }
    for (const side of [this.server, this.client]) {
      await waitUntil(`daemon ${side.pid} to exit`, () => !alive(side.pid), 5_000).catch(() => {
        if (alive(side.pid)) process.kill(side.pid, 'SIGKILL');
      });
      const inode = statSync(`/run/netns/${side.ns}`).ino;
      await run('ip', ['netns', 'del', side.ns]);
      rmSync(join(CONTROL_ROOT, `netns-${inode}`), { recursive: true, force: true });
    }
  }
}

/** `count` pings from namespace `ns` to `dst`, `interval` s apart, from `source` if given. */
export function pingIn(ns: string, dst: string, count: number, interval: number, source?: string) {
  const from = source === undefined ? [] : ['-I', source];
  const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', '1', ...from, dst];
  return run('ip', ['netns', 'exec', ns, 'ping', ...args], 60_000);
}

/**
 * Resident memory in bytes, the anonymous part of it, and open fds of a process. RSS also counts
 * pages of the node binary (file-backed, shared, dropped under pressure) faulted in as code paths
 * first run; the anonymous part is the process's own memory, where a leak would show.
 */
export function usage(pid: number): { rss: number; rssAnon: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), rssAnon: kb('RssAnon'), fds: readdirSync(`/proc/${pid}/fd`).length };
}
