/**
 * CPU breakdown of our tunnel under iperf3 TCP load: where each packet's CPU time goes, split
 * into TUN I/O, crypto (node:crypto), socket I/O, our own JavaScript, GC and the rest.
 *
 * Between the tunnel benchmark's two namespaces it brings up our tunnel (dist/ of this repo,
 * AES-256-GCM unless PROFILE_CIPHER=chachapoly) and pushes iperf3 TCP through it, three times:
 *
 *   1. perf record -g on both daemons, started with --perf-basic-prof so JIT code has names:
 *      the native + JS split (kernel, OpenSSL, V8, our JS), classified by bench/profile/classify.ts
 *   2. perf stat on syscall tracepoints: how many sendmmsg/recvmmsg/read/write/epoll_wait per
 *      packet, i.e. how well batching works under this load
 *   3. --cpu-prof on both daemons: V8's view, for the top JS functions mapped back to src/*.ts
 *
 * The daemons get their Node flags by being started here with the arguments ovpn-cli would give
 * them (NODE_OPTIONS does reach a daemon spawned by ovpn-cli, but Node 20 refuses --cpu-prof
 * there); ovpn-cli then configures peer and key as in scripts/demo.sh.
 *
 * Packet counts come from the peers' link counters (ovpn-cli get_peer) read around each window,
 * CPU time from /proc/<pid>/stat, so µs per packet = category share × CPU time / packets.
 *
 *   npm run bench:profile         → bench/results/profile-before.md and .json
 *   PROFILE_NAME=after            → profile-after.md / .json
 *   PROFILE_SECONDS=8             length of each sampling window
 *   PROFILE_CIPHER=chachapoly     profile CHACHA20-POLY1305 instead of AES-256-GCM
 *   PROFILE_KEEP=dir              keep perf script output and the .cpuprofile files there
 *
 * The text after the "analysis" marker in an existing .md is kept when it is rewritten.
 */

import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { findSourceMap, SourceMap } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { warmUp } from '../tunnel/measure.js';
import { NS, setupNamespaces } from '../tunnel/netns.js';
import {
  alive,
  background,
  commandExists,
  cpuSeconds,
  installCleanupHandlers,
  onCleanup,
  out,
  run,
  runMain,
  sleep,
} from '../tunnel/sys.js';
import { type Cipher, OVPN_CLI, REPO_ROOT, startOurs, type Tunnel } from '../tunnel/tunnels.js';
import {
  CATEGORIES,
  type Category,
  type CpuProfileFrame,
  classifyPerfStack,
  classifyStack,
  cpuProfileFrameOwner,
} from './classify.js';

const CIPHER: Cipher = process.env.PROFILE_CIPHER === 'chachapoly' ? 'CHACHA20-POLY1305' : 'AES-256-GCM';
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
const NAME = process.env.PROFILE_NAME ?? 'before';
const OUT_DIR = process.env.BENCH_OUT ?? join(REPO_ROOT, 'bench/results');
const PERF_HZ = 999;
const DEV = 'obt-prof';
const PORT = 11010;
const SIDES = ['a', 'b'] as const;
const SIDE_ROLE = {
  a: `${NS[0]}: iperf3 sender — seals the data, opens the ACKs`,
  b: `${NS[1]}: iperf3 receiver — opens the data, seals the ACKs`,
};
const PROFILED = {
  id: 'ours-prof',
  impl: 'ours',
  cipher: CIPHER,
  label: 'ours',
  baseline: 'ours-prof',
  subnet: 9,
} as const;
const ANALYSIS_MARKER = '<!-- analysis: text below this line is kept when the file is regenerated -->';

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

type Counters = Record<Category, number>;
const zero = (): Counters => ({ tun: 0, socket: 0, crypto: 0, js: 0, gc: 0, malloc: 0, softirq: 0, loop: 0, other: 0 });

// ---- tunnel state ---------------------------------------------------------------------------

interface Snapshot {
  at: number;
  cpu: number[];
  /** Per side: link packets sent + received by that daemon. */
  tx: number[];
  rx: number[];
}

async function snapshot(t: Tunnel): Promise<Snapshot> {
  const stats = await Promise.all(
    NS.map((ns) => out(process.execPath, [OVPN_CLI, '--json', DEV, 'get_peer', '1'], { ns })),
  );
  const peers = stats.map((s) => JSON.parse(s) as Record<string, number>);
  return {
    at: performance.now(),
    cpu: t.pids.map((pid) => cpuSeconds(pid) ?? NaN),
    tx: peers.map((p) => p['link-tx-packets']!),
    rx: peers.map((p) => p['link-rx-packets']!),
  };
}

interface Window {
  seconds: number;
  cpu: number[];
  tx: number[];
  rx: number[];
}

function windowOf(a: Snapshot, b: Snapshot): Window {
  return {
    seconds: (b.at - a.at) / 1000,
    cpu: a.cpu.map((c, i) => b.cpu[i]! - c),
    tx: a.tx.map((c, i) => b.tx[i]! - c),
    rx: a.rx.map((c, i) => b.rx[i]! - c),
  };
}

/** iperf3 TCP a → b through the tunnel for `seconds`, in the background. */
async function tcpLoad(t: Tunnel, seconds: number): Promise<{ done: Promise<number> }> {
  const server = background('iperf3', ['--server', '--one-off', '--bind', t.addr[1]], { ns: NS[1] });
  for (let i = 0; i < 100; i++) {
    if ((await run('ss', ['-Hltn', 'sport = :5201'], { ns: NS[1] })).stdout.trim() !== '') break;
    await sleep(20);
  }
  const client = background('iperf3', ['--client', t.addr[1], '--time', String(seconds), '--json'], { ns: NS[0] });
  const done = (async () => {
    await client.exited;
    await server.stop(2000);
    try {
      const end = (JSON.parse(client.output()) as { end: { sum_received: { bits_per_second: number } } }).end;
      return end.sum_received.bits_per_second / 1e6;
    } catch {
      return NaN;
    }
  })();
  return { done };
}

async function stopTunnel(t: Tunnel): Promise<void> {
  t.stop();
  for (let i = 0; i < 100 && t.pids.some(alive); i++) await sleep(50);
}

// ---- phase 1: perf record -------------------------------------------------------------------

interface PerfResult {
  window: Window;
  samples: Counters[];
  threads: Record<string, number>[];
  topSymbols: { symbol: string; dso: string; category: Category; categoryShare: number; share: number }[];
}

async function perfPhase(dir: string): Promise<{ perf: PerfResult; syscalls: SyscallResult; mbps: number }> {
  const t = await startOurs(PROFILED, DEV, PORT, {
    nodeFlags: ['--perf-basic-prof', '--interpreted-frames-native-stack'],
    cwd: dir,
  });
  // --perf-basic-prof leaves /tmp/perf-<pid>.map behind.
  onCleanup('perf maps', () => {
    for (const pid of t.pids) rmSync(`/tmp/perf-${pid}.map`, { force: true });
  });
  await warmUp(t);
  const load = await tcpLoad(t, SECONDS + 6);
  await sleep(1500);
  const data = join(dir, 'perf.data');
  const s0 = await snapshot(t);
  await run(
    'perf',
    ['record', '-q', '-F', String(PERF_HZ), '-g', '-p', t.pids.join(','), '-o', data, '--', 'sleep', String(SECONDS)],
    { timeoutMs: (SECONDS + 60) * 1000 },
  );
  const s1 = await snapshot(t);
  const syscalls = await syscallPhase(t, dir);
  const mbps = await load.done;
  await stopTunnel(t);
  log(`    perf: ${mbps.toFixed(0)} Mbit/s during the run`);
  const script = join(dir, 'perf.txt');
  await run('sh', ['-c', `perf script -i '${data}' -F comm,pid,tid,period,ip,sym,dso > '${script}' 2>/dev/null`], {
    timeoutMs: 300_000,
  });
  return {
    perf: { window: windowOf(s0, s1), ...parsePerfScript(readFileSync(script, 'utf8'), t.pids) },
    syscalls,
    mbps,
  };
}

function parsePerfScript(text: string, pids: number[]): Omit<PerfResult, 'window'> {
  const samples = pids.map(() => zero());
  const threads = pids.map(() => ({}) as Record<string, number>);
  const leaf = new Map<string, { symbol: string; dso: string; byCategory: Counters; n: number }>();
  let total = 0;
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    if (lines.length === 0) continue;
    const head = lines[0]!.match(/^\s*(.+?)\s+(\d+)\/(\d+)\s/) ?? lines[0]!.match(/^\s*(.+?)\s+(\d+)\s/);
    if (!head) continue;
    const pid = Number(head[2]);
    const tid = Number(head[3] ?? head[2]);
    const side = pids.indexOf(pid);
    if (side < 0) continue;
    const frames = lines.slice(1).map((l) => {
      const m = l.trim().match(/^[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)$/);
      return m ? { sym: m[1]!, dso: m[2]! } : { sym: l.trim(), dso: '' };
    });
    const cat = classifyPerfStack(frames);
    samples[side]![cat]++;
    const thread = tid === pid ? 'main' : head[1]!.trim();
    threads[side]![thread] = (threads[side]![thread] ?? 0) + 1;
    const top = frames[0];
    if (top) {
      const symbol = top.sym.replace(/ file:\/\/\S+/, (m) => ` ${shortPath(m.trim())}`);
      const key = `${symbol}\0${top.dso}`;
      const e = leaf.get(key) ?? { symbol, dso: top.dso.split('/').pop()!, byCategory: zero(), n: 0 };
      e.n++;
      e.byCategory[cat]++;
      leaf.set(key, e);
    }
    total++;
  }
  const topSymbols = [...leaf.values()]
    .sort((a, b) => b.n - a.n)
    .slice(0, 25)
    .map((e) => {
      // A symbol can serve several categories (a spinlock, memcpy): name the main one.
      const [category, n] = (Object.entries(e.byCategory) as [Category, number][]).sort((x, y) => y[1] - x[1])[0]!;
      return { symbol: e.symbol, dso: e.dso, category, categoryShare: n / e.n, share: e.n / total };
    });
  return { samples, threads, topSymbols };
}

function shortPath(url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url.replace(/:\d+:\d+$/, '')) : url;
  const pos = url.match(/:(\d+:\d+)$/)?.[1];
  return `${relative(REPO_ROOT, path)}${pos ? `:${pos}` : ''}`;
}

// ---- phase 2: syscalls per packet -----------------------------------------------------------

const SYSCALLS = ['sendmmsg', 'recvmmsg', 'read', 'write', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2'] as const;
/** Counters of one perf stat: the syscalls, plus TUN reads that returned a packet. */
type SyscallName = (typeof SYSCALLS)[number] | 'readPacket';
interface SyscallResult {
  window: Window;
  counts: Record<SyscallName, number>[];
}

const SYSCALL_SECONDS = 3;

async function syscallPhase(t: Tunnel, dir: string): Promise<SyscallResult> {
  const seconds = SYSCALL_SECONDS;
  const s0 = await snapshot(t);
  const files = t.pids.map((pid) => join(dir, `stat-${pid}.txt`));
  // Only the tracepoints this kernel has (epoll_pwait2 is recent); read and write only on the
  // TUN fd (libuv and V8 also read and write eventfds).
  const have = (s: string) =>
    existsSync(`/sys/kernel/tracing/events/syscalls/sys_enter_${s}`) ||
    existsSync(`/sys/kernel/debug/tracing/events/syscalls/sys_enter_${s}`);
  const eventArgs = (pid: number): string[] => {
    const tunFd = readdirSync(`/proc/${pid}/fd`).find((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun';
      } catch {
        return false;
      }
    });
    // Packets are counted in the same session, so no clock has to line up: a read() that
    // returned more than 20 bytes (an IP header) read a packet from the TUN (eventfd reads give 8),
    // and every packet in is one write() to the TUN.
    return [
      ...SYSCALLS.filter(have).flatMap((s) => {
        const e = ['-e', `syscalls:sys_enter_${s}`];
        return (s === 'read' || s === 'write') && tunFd !== undefined ? [...e, '--filter', `fd == ${tunFd}`] : e;
      }),
      ...['-e', 'syscalls:sys_exit_read', '--filter', 'ret > 20'],
    ];
  };
  await Promise.all(
    t.pids.map((pid, i) =>
      run(
        'perf',
        ['stat', '-x', ',', ...eventArgs(pid), '-p', String(pid), '-o', files[i]!, '--', 'sleep', String(seconds)],
        { timeoutMs: 60_000 },
      ),
    ),
  );
  const s1 = await snapshot(t);
  const counts = files.map((f) => {
    const c = Object.fromEntries([...SYSCALLS, 'readPacket'].map((s) => [s, 0])) as Record<SyscallName, number>;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const [value, , event] = line.split(',');
      if (event === 'syscalls:sys_exit_read') {
        c.readPacket = Number(value);
        continue;
      }
      const name = event?.match(/sys_enter_(\w+)/)?.[1] as (typeof SYSCALLS)[number] | undefined;
      if (name && name in c) c[name] = Number(value);
    }
    return c;
  });
  return { window: windowOf(s0, s1), counts };
}

// ---- phase 3: --cpu-prof --------------------------------------------------------------------

interface CpuProfile {
  nodes: { id: number; callFrame: CpuProfileFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface FunctionRow {
  name: string;
  where: string;
  category: Category;
  self: number;
}

interface CpuProfResult {
  window: Window;
  samples: Counters[];
  top: FunctionRow[];
  sampled: number;
}

async function cpuProfPhase(dir: string): Promise<CpuProfResult> {
  const profDir = join(dir, 'cpuprof');
  mkdirSync(profDir);
  const t = await startOurs(PROFILED, DEV, PORT, {
    nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=250'],
    cwd: dir,
  });
  await warmUp(t);
  const load = await tcpLoad(t, SECONDS + 3);
  await sleep(1500);
  const s0 = await snapshot(t);
  const from = Number(process.hrtime.bigint() / 1000n);
  await sleep(SECONDS * 1000);
  const to = Number(process.hrtime.bigint() / 1000n);
  const s1 = await snapshot(t);
  const mbps = await load.done;
  log(`    cpu-prof: ${mbps.toFixed(0)} Mbit/s during the run`);
  await stopTunnel(t);
  // The profile is written when the daemon exits; its file name carries the pid.
  const files = t.pids.map((pid) =>
    readdirSync(profDir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile')),
  );
  if (files.some((f) => f === undefined))
    throw new Error(
      `no .cpuprofile for daemons ${t.pids.join(', ')} in ${profDir}: ${readdirSync(profDir).join(', ')}`,
    );
  const profiles = files.map((f) => JSON.parse(readFileSync(join(profDir, f!), 'utf8')) as CpuProfile);
  const samples = profiles.map(() => zero());
  const rows = new Map<string, FunctionRow>();
  let sampled = 0;
  profiles.forEach((p, side) => {
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    let ts = p.startTime;
    p.samples.forEach((id, i) => {
      ts += p.timeDeltas[i]!;
      if (ts < from || ts > to) return;
      const node = byId.get(id)!;
      if (node.callFrame.functionName === '(idle)') return;
      const stack: CpuProfileFrame[] = [];
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur))
        stack.push(byId.get(cur)!.callFrame);
      const cat = classifyStack(stack, cpuProfileFrameOwner);
      samples[side]![cat]++;
      sampled++;
      const f = node.callFrame;
      const where = f.url === '' ? '(native)' : sourceLocation(f.url, f.lineNumber, f.columnNumber);
      const key = `${f.functionName}\0${where}`;
      const row = rows.get(key) ?? { name: f.functionName || '(anonymous)', where, category: cat, self: 0 };
      row.self++;
      rows.set(key, row);
    });
  });
  if (sampled === 0) throw new Error('the --cpu-prof profiles have no samples in the measuring window');
  const top = [...rows.values()].sort((a, b) => b.self - a.self).slice(0, 20);
  return { window: windowOf(s0, s1), samples, top, sampled };
}

const maps = new Map<string, SourceMap | null>();
/** dist/src/x.js:line → src/x.ts:line through the compiler's source map, when there is one. */
function sourceLocation(url: string, line: number, column: number): string {
  if (!url.startsWith('file://')) return `${url}:${line + 1}`;
  const file = fileURLToPath(url);
  if (!maps.has(file)) {
    let map: SourceMap | null = null;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      map = findSourceMap(pathToFileURL(file).href) ?? null;
    }
    maps.set(file, map);
  }
  const map = maps.get(file);
  const entry = map?.findEntry(line, column) as { originalSource?: string; originalLine?: number } | undefined;
  if (entry?.originalSource) {
    const src = entry.originalSource.startsWith('file://')
      ? fileURLToPath(entry.originalSource)
      : join(file, '..', entry.originalSource);
    return `${relative(REPO_ROOT, src)}:${(entry.originalLine ?? 0) + 1}`;
  }
  return `${relative(REPO_ROOT, file)}:${line + 1}`;
}

// ---- report ---------------------------------------------------------------------------------

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const us = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');

interface Breakdown {
  /** Per side and both: share of CPU per category, CPU µs per packet handled. */
  share: Counters[];
  micros: Counters[];
  cpuSeconds: number[];
  packets: number[];
}

/** Shares from sample counts, scaled onto measured CPU time and packets (tx + rx) per side. */
function breakdown(samples: Counters[], w: Window): Breakdown {
  const share: Counters[] = [];
  const micros: Counters[] = [];
  const cpu: number[] = [];
  const packets: number[] = [];
  const sides = [...samples.map((_, i) => [i]), samples.map((_, i) => i)];
  for (const members of sides) {
    const c = zero();
    for (const i of members) for (const k of Object.keys(c) as Category[]) c[k] += samples[i]![k];
    const n = Object.values(c).reduce((a, b) => a + b, 0);
    const s = zero();
    const m = zero();
    // Per side: µs per packet that daemon handled (sent or received). Both: µs of both ends per
    // packet through the tunnel (each is sealed at one end and opened at the other).
    const cpuSum = members.reduce((a, i) => a + w.cpu[i]!, 0);
    const pk =
      members.length === 1 ? w.tx[members[0]!]! + w.rx[members[0]!]! : members.reduce((a, i) => a + w.tx[i]!, 0);
    const weighted =
      members.length === 1
        ? null
        : members.map(
            (i) =>
              w.cpu[i]! /
              Math.max(
                1,
                Object.values(samples[i]!).reduce((a, b) => a + b, 0),
              ),
          );
    for (const k of Object.keys(c) as Category[]) {
      // For both ends, weight each side's samples by its own CPU time per sample.
      const seconds =
        weighted === null
          ? (c[k] / Math.max(1, n)) * cpuSum
          : members.reduce((a, i, j) => a + samples[i]![k] * weighted[j]!, 0);
      s[k] = seconds / cpuSum;
      m[k] = (seconds / pk) * 1e6;
    }
    share.push(s);
    micros.push(m);
    cpu.push(cpuSum);
    packets.push(pk);
  }
  return { share, micros, cpuSeconds: cpu, packets };
}

function breakdownTable(b: Breakdown): string {
  const lines = [
    '| category | a: % of CPU | a: µs/packet | b: % of CPU | b: µs/packet | both ends: % | both ends: µs per tunnel packet |',
    '|:--|--:|--:|--:|--:|--:|--:|',
  ];
  for (const c of CATEGORIES) {
    lines.push(
      `| ${c.label} | ${pct(b.share[0]![c.key])} | ${us(b.micros[0]![c.key])} | ${pct(b.share[1]![c.key])} | ${us(b.micros[1]![c.key])} | ${pct(b.share[2]![c.key])} | ${us(b.micros[2]![c.key])} |`,
    );
  }
  const tot = (i: number) => Object.values(b.micros[i]!).reduce((a, x) => a + x, 0);
  lines.push(`| **total** | 100% | **${us(tot(0))}** | 100% | **${us(tot(1))}** | 100% | **${us(tot(2))}** |`);
  return lines.join('\n');
}

function windowLine(w: Window): string {
  const kpps = (i: number) => ((w.tx[i]! + w.rx[i]!) / w.seconds / 1000).toFixed(1);
  return (
    `${w.seconds.toFixed(1)} s; a: ${w.tx[0]} packets out, ${w.rx[0]} in (${kpps(0)} kpps), ${w.cpu[0]!.toFixed(2)} CPU s; ` +
    `b: ${w.tx[1]} out, ${w.rx[1]} in (${kpps(1)} kpps), ${w.cpu[1]!.toFixed(2)} CPU s`
  );
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('needs root (network namespaces, TUN devices, perf): sudo npm run bench:profile');
  if (!existsSync(OVPN_CLI)) throw new Error(`${OVPN_CLI} is missing: run npm run build`);
  installCleanupHandlers();
  const missing = [
    ['perf', 'linux-perf'],
    ['iperf3', 'iperf3'],
    ['ip', 'iproute2'],
    ['ss', 'iproute2'],
    ['ping', 'iputils-ping'],
  ]
    .filter(([c]) => !commandExists(c!))
    .map(([, p]) => p!);
  if (missing.length > 0) {
    log(`==> installing ${[...new Set(missing)].join(' ')} (apt-get)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env, timeoutMs: 300_000 });
    await run('apt-get', ['install', '-y', '--no-install-recommends', ...new Set(missing)], {
      env,
      timeoutMs: 600_000,
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-profile-'));
  onCleanup('temporary directory', () => {
    // PROFILE_KEEP=dir keeps the raw material (perf script output, .cpuprofile files) for a closer look.
    const keep = process.env.PROFILE_KEEP;
    if (keep) {
      for (const f of readdirSync(dir))
        if (f === 'perf.data' || f.startsWith('isolate-')) rmSync(join(dir, f), { force: true });
      cpSync(dir, keep, { recursive: true });
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const date = new Date();
  log(`==> profiling ours (${CIPHER}) under iperf3 TCP, ${SECONDS} s windows; namespaces ${NS.join(', ')}`);
  await setupNamespaces();
  log('==> 1/3 perf record + 2/3 perf stat (syscalls)');
  const { perf, syscalls, mbps } = await perfPhase(dir);
  log('==> 3/3 --cpu-prof');
  const prof = await cpuProfPhase(dir);

  const perfB = breakdown(perf.samples, perf.window);
  const profB = breakdown(prof.samples, prof.window);
  const commit = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
  }).stdout.trim();
  const dirty =
    spawnSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'native'], {
      encoding: 'utf8',
    }).stdout.trim() !== '';

  // Packets out = packets read from the TUN, packets in = writes to the TUN, counted by the same
  // perf stat as the syscalls.
  const sys = syscalls.counts.map((c) => ({ ...c, tx: c.readPacket, rx: c.write, seconds: SYSCALL_SECONDS }));
  const per = (n: number, d: number) => (d > 0 ? (n / d).toFixed(2) : '—');
  const syscallTable = [
    '| daemon | packets out / sendmmsg | packets in / recvmmsg | TUN read() per packet out | TUN write() per packet in | epoll_wait per 100 packets |',
    '|:--|--:|--:|--:|--:|--:|',
    ...sys.map(
      (s, i) =>
        `| ${SIDES[i]} | ${per(s.tx, s.sendmmsg)} | ${per(s.rx, s.recvmmsg)} | ${per(s.read, s.tx)} | ${per(s.write, s.rx)} | ${per((s.epoll_wait + s.epoll_pwait + s.epoll_pwait2) * 100, s.tx + s.rx)} |`,
    ),
  ].join('\n');

  const mdPath = join(OUT_DIR, `profile-${NAME}.md`);
  const kept = existsSync(mdPath) ? readFileSync(mdPath, 'utf8').split(ANALYSIS_MARKER)[1] : undefined;
  const md = `# CPU profile of our tunnel under iperf3 TCP load (${NAME})

${date.toISOString().slice(0, 16).replace('T', ' ')} UTC · commit ${commit}${dirty ? ' (src/native modified)' : ''} · ${CIPHER} · ${cpus()[0]?.model ?? ''}, ${cpus().length} cores · node ${process.version} · ${firstLine('perf', ['--version'])}
Reproduce: \`npm run bench:profile\` (as root; writes this file and \`profile-${NAME}.json\`).

## Method

Our tunnel (dist/ of this repo) between the namespaces ${NS.join(' and ')}, one daemon in each, iperf3 TCP from a to b
through it (${mbps.toFixed(0)} Mbit/s while perf sampled). Both daemons are profiled at once:

- **perf**: \`perf record -F ${PERF_HZ} -g -p <both daemons>\` for ${SECONDS} s, daemons started with
  \`node --perf-basic-prof --interpreted-frames-native-stack dist/src/daemon/main.js\`, so kernel, OpenSSL, V8 and our JIT-compiled functions all have names in one stack. Each sample is put in the
  category of the innermost frame that decides (\`bench/profile/classify.ts\`): a Buffer view made by our \`seal()\`
  is our JavaScript, a page fault inside a scavenge is GC, and everything the kernel does inside our \`sendmmsg()\`
  — including the veth hop and the other namespace's UDP/IP receive, run inline — is socket I/O.
- The shares are scaled onto the daemons' CPU time (utime+stime from /proc) and divided by the packets each daemon
  handled in the same window (link packets out + in, from \`ovpn-cli get_peer\`).
- **perf stat** on syscall tracepoints (3 s) gives the batching actually achieved.
- **--cpu-prof** (250 µs interval; Node 20 refuses it in NODE_OPTIONS, so the harness starts the daemons itself with
  the arguments ovpn-cli would use, then configures them with ovpn-cli; a separate run of the same load) gives V8's view: the top functions, mapped back to
  src/*.ts through the source maps. Only samples inside the measuring window count; \`(idle)\` is left out.

Daemon a = ${SIDE_ROLE.a}. Daemon b = ${SIDE_ROLE.b}.
"Both ends, µs per tunnel packet" is the CPU of both daemons divided by the packets that crossed the tunnel (a's
out + b's out): what one packet costs, sealed at one end and opened at the other.

## Breakdown (perf: native + JS)

Window: ${windowLine(perf.window)}.

${breakdownTable(perfB)}

${CATEGORIES.map((c) => `- **${c.label}**: ${c.what}`).join('\n')}

Threads (perf samples): ${perf.threads
    .map(
      (t, i) =>
        `${SIDES[i]}: ${Object.entries(t)
          .sort((x, y) => y[1] - x[1])
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
    )
    .join('; ')}.

## Batching (perf stat, syscalls)

${SYSCALL_SECONDS} s of \`perf stat\` per daemon; packets out = read()s of the TUN that returned a packet, packets in = write()s to
the TUN, counted in the same session (read/write filtered to the TUN fd). Counters around it: ${windowLine(syscalls.window)}.

${syscallTable}

## Cross-check: V8 --cpu-prof

Window: ${windowLine(prof.window)}. ${prof.sampled} samples. (\`(program)\` — native code V8 cannot attribute,
mostly libuv and epoll — is counted as event loop; the kernel part of a native call is inside that call.)

${breakdownTable(profB)}

## Top functions (--cpu-prof self time, both daemons)

| # | function | where | category | self |
|--:|:--|:--|:--|--:|
${prof.top.map((r, i) => `| ${i + 1} | \`${r.name}\` | ${r.where} | ${CATEGORIES.find((c) => c.key === r.category)!.label} | ${pct(r.self / prof.sampled)} |`).join('\n')}

## Top symbols (perf self time, both daemons)

| # | symbol | object | (main) category | self |
|--:|:--|:--|:--|--:|
${perf.topSymbols.map((r, i) => `| ${i + 1} | \`${r.symbol.replace(/\|/g, '\\|').slice(0, 110)}\` | ${r.dso} | ${CATEGORIES.find((c) => c.key === r.category)!.label}${r.categoryShare < 0.9 ? ` (${pct(r.categoryShare)})` : ''} | ${pct(r.share)} |`).join('\n')}

${ANALYSIS_MARKER}${kept ?? '\n'}`;
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(mdPath, md);
  writeFileSync(
    join(OUT_DIR, `profile-${NAME}.json`),
    `${JSON.stringify({ date: date.toISOString(), commit, dirty, cipher: CIPHER, seconds: SECONDS, mbps, categories: CATEGORIES, perf: { ...perf, breakdown: perfB }, syscalls: sys, cpuProf: { ...prof, breakdown: profB } }, null, 2)}\n`,
  );
  log('');
  log(breakdownTable(perfB));
  log('');
  log(syscallTable);
  log(`\nwrote ${mdPath} and profile-${NAME}.json`);
}

runMain('profile', main);
