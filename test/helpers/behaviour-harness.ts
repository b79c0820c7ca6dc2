/**
 * The scaffolding of test/behaviour.test.ts: two throw-away network namespaces bt0/bt1 joined by
 * a veth pair (10.20.1.1/24 <-> 10.20.1.2/24), a tun0 in each made with ovpn-cli (5.5.6.1/24,
 * 5.5.6.2/24) keyed from a key file in a temp dir, and a teardown that deletes the interfaces,
 * checks that no process is left in either namespace, and deletes the namespaces.
 *
 * Every wait is on an event (a line printed, a process exiting) or a bounded poll of a condition
 * with short intervals; nothing sleeps a fixed time to synchronise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/ovpn-cli.js', import.meta.url));
export const DAEMON = fileURLToPath(new URL('../../src/daemon/main.js', import.meta.url));
export const NS_HELPER = fileURLToPath(new URL('./behaviour-ns.js', import.meta.url));
export const CONTROL_ROOT = process.env.OVPN_DCO_RUN_DIR ?? '/run/ovpn-dco';

export const NS = ['bt0', 'bt1'] as const;
export type Ns = (typeof NS)[number];
export const LINK_ADDR: Record<Ns, string> = { bt0: '10.20.1.1', bt1: '10.20.1.2' };
export const VPN_ADDR: Record<Ns, string> = { bt0: '5.5.6.1', bt1: '5.5.6.2' };
export const other = (ns: Ns): Ns => (ns === 'bt0' ? 'bt1' : 'bt0');
/** Both sides use local/remote UDP port 1 and peer-id 1. */
export const PORT = 1;
export const PEER = 1;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after timeoutMs, so a hang fails instead of stalling). */
export function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function describe(what: string, r: RunResult): string {
  return `${what} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

export async function runOk(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(describe(`${cmd} ${args.join(' ')}`, r));
  return r.stdout;
}

export const inNs = (ns: Ns, args: string[], timeoutMs?: number) =>
  run('ip', ['netns', 'exec', ns, ...args], timeoutMs);
/** ovpn-cli inside a namespace. */
export const cli = (ns: Ns, ...args: string[]) => inNs(ns, [process.execPath, CLI, ...args]);

export async function cliOk(ns: Ns, ...args: string[]): Promise<string> {
  const r = await cli(ns, ...args);
  if (r.code !== 0) throw new Error(describe(`[${ns}] ovpn-cli ${args.join(' ')}`, r));
  return r.stdout;
}

export async function cliJson<T = any>(ns: Ns, ...args: string[]): Promise<T> {
  return JSON.parse(await cliOk(ns, '--json', ...args)) as T;
}

/** `get_peer <id> --json` (seed syntax). */
export const getPeer = (ns: Ns, id = PEER) => cliJson(ns, 'tun0', 'get_peer', String(id));

/** The daemon's `iface-get` reply (pid, drops, ...), through the control socket. */
export async function ifaceGet(ns: Ns): Promise<any> {
  const r = await inNs(ns, [process.execPath, NS_HELPER, 'iface-get', 'tun0']);
  if (r.code !== 0) throw new Error(describe(`[${ns}] iface-get`, r));
  return JSON.parse(r.stdout);
}

/** A drop counter from either spelling (peer-get renames keys to kebab-case, iface-get does not). */
export function drop(drops: Record<string, number>, name: string): number {
  const kebab = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return drops[name] ?? drops[kebab] ?? NaN;
}

/** Packets transmitted/received from ping's summary line. */
export function pingStats(output: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (m === null) throw new Error(`no ping summary in: ${output}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

export const linkExists = async (ns: Ns, name = 'tun0') =>
  (await run('ip', ['-n', ns, 'link', 'show', name])).code === 0;

/**
 * Whether a process is still running. A zombie has exited: daemons are detached, so init reaps
 * them, and in a container init may take its time doing so.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `check` every intervalMs until it returns something truthy; throws after timeoutMs. */
export async function waitUntil<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 5_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`,
      );
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * waitUntil for a condition built from observations: `probe` returns whether it holds and what
 * it saw, so a timeout says what the values were.
 */
export async function waitFor(
  what: string,
  probe: () => Promise<{ done: boolean; seen: unknown }>,
  timeoutMs = 5_000,
  intervalMs = 50,
): Promise<unknown> {
  let seen: unknown;
  try {
    await waitUntil(
      what,
      async () => {
        const r = await probe();
        seen = r.seen;
        return r.done;
      },
      timeoutMs,
      intervalMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(seen)}`);
  }
  return seen;
}

/** A background process with its output split into lines, so a test can await a given line. */
export class Background {
  readonly child: ChildProcess;
  readonly lines: { stream: 'stdout' | 'stderr'; text: string }[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];

  constructor(cmd: string, args: string[], stderrTo?: number) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', stderrTo ?? 'pipe'] });
    const feed = (stream: 'stdout' | 'stderr') => {
      let rest = '';
      return (chunk: string) => {
        this[stream] += chunk;
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const text of parts) this.lines.push({ stream, text });
        for (const wake of this.waiters.splice(0)) wake();
      };
    };
    this.child.stdout!.setEncoding('utf8').on('data', feed('stdout'));
    this.child.stderr?.setEncoding('utf8').on('data', feed('stderr'));
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        for (const wake of this.waiters.splice(0)) wake();
        resolve({ code, signal });
      }),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first line (seen so far or later) matching `match`; rejects after timeoutMs. */
  waitLine(
    match: (text: string, stream: 'stdout' | 'stderr') => boolean,
    what: string,
    timeoutMs = 5_000,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
            ),
          ),
        timeoutMs,
      );
      const check = () => {
        const hit = this.lines.find((l) => match(l.text, l.stream));
        if (hit !== undefined) {
          clearTimeout(timer);
          resolve(hit.text);
        } else if (!this.running) {
          clearTimeout(timer);
          reject(
            new Error(
              `process exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
            ),
          );
        } else this.waiters.push(check);
      };
      check();
    });
  }

  /** Sends `signal` if still running and waits for the exit (bounded). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 3_000) {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.running && this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Parsed `listen_mcast` line: "received CMD_X on tun0: {json}". */
export function parseNotification(text: string): { name: string; ifname: string; attrs: any } | null {
  const m = /^received (\S+) on (\S+): (.*)$/.exec(text);
  return m === null ? null : { name: m[1]!, ifname: m[2]!, attrs: JSON.parse(m[3]!) };
}

/** The inode of a named namespace (`ip netns add` bind-mounts it at /run/netns/<name>). */
export function nsInode(ns: Ns): number {
  return statSync(`/run/netns/${ns}`).ino;
}

/** Pids of every process whose network namespace has this inode. */
export function pidsInNs(inode: number): number[] {
  const want = `net:[${inode}]`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) === want) pids.push(Number(entry));
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return pids;
}

function describePid(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`;
  } catch {
    return `${pid} (gone)`;
  }
}

/** Kills what runs in a namespace of ours and deletes it: a leftover from an interrupted run. */
async function removeNs(ns: Ns): Promise<void> {
  if (!existsSync(`/run/netns/${ns}`)) return;
  const inode = nsInode(ns);
  for (const pid of pidsInNs(inode)) process.kill(pid, 'SIGKILL');
  await waitUntil(`processes in ${ns} to die`, () => pidsInNs(inode).length === 0, 3_000);
  await runOk('ip', ['netns', 'del', ns]);
  rmSync(join(CONTROL_ROOT, `netns-${inode}`), { recursive: true, force: true });
}

export interface SetupOptions {
  /**
   * Start this namespace's daemon as a child of the test instead of letting ovpn-cli detach it,
   * so its exit code can be observed. It is the same program with the same arguments, and its
   * stderr still goes to the interface's log file.
   */
  ownDaemon?: Ns;
}

export class Tunnel {
  readonly dir = mkdtempSync(join(tmpdir(), 'ovpn-bt-'));
  readonly keyFile = join(this.dir, 'key0');
  readonly keyFile2 = join(this.dir, 'key1');
  readonly inode = {} as Record<Ns, number>;
  /** Length of each namespace's tun0.log when the test began: what comes after is this test's. */
  readonly logStart = {} as Record<Ns, number>;
  readonly daemonPids = new Set<number>();
  ownDaemon: Background | null = null;
  private readonly background: Background[] = [];

  static async setup(options: SetupOptions = {}): Promise<Tunnel> {
    for (const ns of NS) await removeNs(ns);
    const t = new Tunnel();
    try {
      await t.build(options);
    } catch (error) {
      await t.teardown();
      throw error;
    }
    return t;
  }

  logPath(ns: Ns): string {
    return join(CONTROL_ROOT, `netns-${this.inode[ns]}`, 'tun0.log');
  }

  /** What the namespace's daemons logged since the test began. */
  logSinceStart(ns: Ns): string {
    try {
      return readFileSync(this.logPath(ns)).subarray(this.logStart[ns]).toString('utf8');
    } catch {
      return '';
    }
  }

  /** Starts a process inside a namespace; it is stopped at teardown if still running. */
  spawn(ns: Ns, args: string[], stderrTo?: number): Background {
    const bg = new Background('ip', ['netns', 'exec', ns, ...args], stderrTo);
    this.background.push(bg);
    return bg;
  }

  /** `listen_mcast tun0` in a namespace, resolved once it has subscribed. */
  async listen(ns: Ns): Promise<Background> {
    const bg = this.spawn(ns, [process.execPath, CLI, 'listen_mcast', 'tun0']);
    await bg.waitLine(
      (text, stream) => stream === 'stderr' && text.startsWith('listening for notifications'),
      `listen_mcast in ${ns} to subscribe`,
    );
    return bg;
  }

  async daemonPid(ns: Ns): Promise<number> {
    const pid = (await ifaceGet(ns)).pid as number;
    this.daemonPids.add(pid);
    return pid;
  }

  /** Ping through the tunnel from `ns` to the other side's VPN address. */
  ping(ns: Ns, ...args: string[]) {
    return inNs(ns, ['ping', ...args, VPN_ADDR[other(ns)]], 30_000);
  }

  private async build(options: SetupOptions): Promise<void> {
    writeFileSync(this.keyFile, `${randomBytes(72).toString('base64')}\n`, { mode: 0o600 });
    writeFileSync(this.keyFile2, `${randomBytes(72).toString('base64')}\n`, { mode: 0o600 });
    for (const ns of NS) {
      await runOk('ip', ['netns', 'add', ns]);
      this.inode[ns] = nsInode(ns);
      // No IPv6 on the interfaces made from here on: the kernel would otherwise send router
      // solicitations and MLD reports through tun0, and "no traffic" would not be none.
      await runOk('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
      try {
        this.logStart[ns] = statSync(this.logPath(ns)).size;
      } catch {
        this.logStart[ns] = 0;
      }
    }
    await runOk('ip', ['-n', 'bt0', 'link', 'add', 'btv0', 'type', 'veth', 'peer', 'name', 'btv1', 'netns', 'bt1']);
    for (const [i, ns] of NS.entries()) {
      await runOk('ip', ['-n', ns, 'addr', 'add', `${LINK_ADDR[ns]}/24`, 'dev', `btv${i}`]);
      await runOk('ip', ['-n', ns, 'link', 'set', `btv${i}`, 'up']);
      await runOk('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const [dir, ns] of NS.entries()) {
      if (options.ownDaemon === ns) await this.startOwnDaemon(ns);
      await this.addPeer(ns);
      await cliOk(ns, 'tun0', 'new_key', String(PEER), 'aes', String(dir), this.keyFile);
      await runOk('ip', ['-n', ns, 'addr', 'add', `${VPN_ADDR[ns]}/24`, 'dev', 'tun0']);
      await this.daemonPid(ns);
    }
    const r = await this.ping('bt0', '-c', '2', '-i', '0.1', '-W', '2');
    if (pingStats(r.stdout).received !== 2) throw new Error(describe('tunnel check ping', r));
  }

  /** `ovpn-cli tun0 new_peer`: creates tun0 (starting its daemon) if it does not exist yet. */
  async addPeer(ns: Ns): Promise<void> {
    await cliOk(
      ns,
      'tun0',
      'new_peer',
      String(PORT),
      String(PEER),
      LINK_ADDR[other(ns)],
      String(PORT),
      VPN_ADDR[other(ns)],
    );
  }

  private async startOwnDaemon(ns: Ns): Promise<void> {
    const dir = join(CONTROL_ROOT, `netns-${this.inode[ns]}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const log = openSync(this.logPath(ns), 'a', 0o600);
    this.ownDaemon = this.spawn(ns, [process.execPath, DAEMON, '--ifname', 'tun0', '--mode', 'P2P'], log);
    closeSync(log);
    await this.ownDaemon.waitLine((text) => text === 'ready', `daemon in ${ns} to be ready`);
  }

  /**
   * Deletes the interfaces, waits for their daemons to exit, and deletes the namespaces.
   * Returns the processes that were still running in them (killed here), which a test asserts
   * is none.
   */
  async teardown(): Promise<string[]> {
    const leftovers: string[] = [];
    // A stopped daemon cannot answer del_iface.
    for (const ns of NS) {
      if (this.inode[ns] === undefined) continue;
      for (const pid of pidsInNs(this.inode[ns])) process.kill(pid, 'SIGCONT');
    }
    for (const bg of this.background) if (bg !== this.ownDaemon) await bg.stop('SIGINT');
    for (const ns of NS) {
      if (this.inode[ns] === undefined) continue;
      if (await linkExists(ns)) await cli(ns, 'del_iface', 'tun0');
    }
    for (const pid of this.daemonPids) {
      try {
        await waitUntil(`daemon ${pid} to exit`, () => !pidAlive(pid), 3_000);
      } catch {
        // reported as a leftover below
      }
    }
    if (this.ownDaemon !== null) await this.ownDaemon.stop('SIGTERM');
    for (const ns of NS) {
      if (this.inode[ns] === undefined) continue;
      const pids = pidsInNs(this.inode[ns]);
      for (const pid of pids) {
        leftovers.push(`${ns}: ${describePid(pid)}`);
        process.kill(pid, 'SIGKILL');
      }
      await removeNs(ns);
    }
    rmSync(this.dir, { recursive: true, force: true });
    return leftovers;
  }
}

/**
 * Runs `body` against a fresh tunnel and always tears it down; the test fails if the body did
 * or if any process (daemon, ping, listener) was left running in the namespaces.
 */
export async function withTunnel(options: SetupOptions, body: (t: Tunnel) => Promise<void>): Promise<void> {
  const t = await Tunnel.setup(options);
  let failure: unknown = null;
  try {
    await body(t);
  } catch (error) {
    failure = error;
  }
  const leftovers = await t.teardown();
  if (failure !== null) throw failure;
  if (leftovers.length > 0) throw new Error(`processes left running in the test namespaces:\n${leftovers.join('\n')}`);
}
