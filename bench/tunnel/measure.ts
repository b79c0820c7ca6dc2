/**
 * One measurement of one tunnel: iperf3 TCP (with ping running alongside for the RTT under load,
 * and the tunnel processes' CPU time read before and after), iperf3 UDP packets per second, idle
 * ping. Traffic always flows from namespace a to b, to the tunnel's inner address of b.
 */
import { readFileSync } from 'node:fs';
import { NS } from './netns.js';
import { type Background, background, clockTicks, cpuSeconds, netnsPids, run, runSync, sleep, waitFor } from './sys.js';
import type { Tunnel } from './tunnels.js';

const IPERF_PORT = 5201;

/**
 * The TCP congestion control of the iperf3 sender. It shapes every TCP figure (BBR keeps sending
 * through losses at its bandwidth estimate; CUBIC backs off on each), so the run records it.
 * BENCH_TCP_CC picks one per socket (iperf3 --congestion); by default the namespaces' own, which
 * they inherit from the host.
 */
const TCP_CC_CHOSEN = process.env.BENCH_TCP_CC || null;

/** What the iperf3 sender uses: the chosen one, else the sending namespace's default. */
export function tcpCongestionControl(): string {
  if (TCP_CC_CHOSEN !== null) return TCP_CC_CHOSEN;
  return runSync('sysctl', ['-n', 'net.ipv4.tcp_congestion_control'], NS[0]).stdout.trim() || 'unknown';
}

export interface RttStats {
  sent: number;
  received: number;
  /** Milliseconds. */
  min: number;
  median: number;
  mean: number;
  p95: number;
  max: number;
}

export interface TcpSample {
  seconds: number;
  bytes: number;
  mbps: number;
  retransmits: number;
  cpuSeconds: number;
  cpuSecondsPerGB: number;
  /** Ping through the tunnel while the transfer runs; null if ping got nothing back. */
  rtt: RttStats | null;
  /** CPU the rest of the machine used meanwhile (cores, see otherLoad()). */
  otherLoad: number;
}

export interface UdpSample {
  size: number;
  seconds: number;
  sentPps: number;
  receivedPps: number;
  lostPercent: number;
  cpuSeconds: number;
  /** Tunnel CPU per packet that arrived, microseconds. */
  cpuMicrosPerPacket: number;
  otherLoad: number;
}

// ---- machine load -------------------------------------------------------------------------

/** Busy jiffies of the whole machine, our namespaces' processes, and our reaped children. */
interface LoadMark {
  at: number;
  busy: number;
  ours: number;
}

function systemBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice: busy leaves out idle, iowait
  // and the guest fields (already inside user and nice).
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return busy / clockTicks();
}

function childrenSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime 14, stime 15, cutime 16, cstime 17 (fields from 3 on).
  return (
    (Number(fields[14 - 3]) + Number(fields[15 - 3]) + Number(fields[16 - 3]) + Number(fields[17 - 3])) / clockTicks()
  );
}

export function loadMark(): LoadMark {
  let ours = childrenSeconds();
  for (const ns of NS) for (const pid of netnsPids(ns)) ours += cpuSeconds(pid) ?? 0;
  return { at: performance.now(), busy: systemBusySeconds(), ours };
}

/**
 * Cores' worth of CPU the rest of the machine used between two marks: all busy time minus that
 * of the processes in our namespaces and of this process and its children. An estimate (a
 * process that both started and ended in between, or kernel work in softirq context, can land
 * on either side), good enough to tell a quiet run from one sharing the machine.
 */
export function otherLoad(a: LoadMark, b: LoadMark): number {
  const seconds = (b.at - a.at) / 1000;
  return Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / seconds);
}

// ---- helpers --------------------------------------------------------------------------------

function tunnelCpu(t: Tunnel): number {
  let sum = 0;
  for (const pid of t.pids) {
    const s = cpuSeconds(pid);
    if (s === null) throw new Error(`${t.id}: tunnel process ${pid} is gone`);
    sum += s;
  }
  return sum;
}

async function iperfServer(t: Tunnel): Promise<Background> {
  const server = background('iperf3', ['--server', '--one-off', '--bind', t.addr[1], '--port', String(IPERF_PORT)], {
    ns: NS[1],
  });
  await waitFor(
    'the iperf3 server',
    async () => {
      if (server.child.exitCode !== null) throw new Error(`iperf3 server exited: ${server.output()}`);
      return (await run('ss', ['-Hltn', `sport = :${IPERF_PORT}`], { ns: NS[1] })).stdout.trim() !== '';
    },
    5000,
    20,
  );
  return server;
}

interface IperfEnd {
  sum_sent: { seconds: number; bytes: number; retransmits?: number };
  sum_received: { seconds: number; bytes: number };
  sum?: { lost_percent?: number };
}

async function iperfClient(t: Tunnel, args: string[], seconds: number): Promise<IperfEnd> {
  const server = await iperfServer(t);
  try {
    const r = await run(
      'iperf3',
      ['--client', t.addr[1], '--port', String(IPERF_PORT), '--time', String(seconds), '--json', ...args],
      {
        ns: NS[0],
        timeoutMs: (seconds + 30) * 1000,
        allowFail: true,
      },
    );
    let json: { end?: IperfEnd; error?: string };
    try {
      json = JSON.parse(r.stdout) as typeof json;
    } catch {
      throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    if (json.error !== undefined || json.end?.sum_received === undefined)
      throw new Error(`iperf3: ${json.error ?? 'no result'}`);
    return json.end;
  } finally {
    await server.stop(2000);
  }
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function parsePing(text: string): RttStats | null {
  const times = [...text.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const summary = text.match(/(\d+) packets transmitted, (\d+) received/);
  if (times.length === 0) return null;
  return {
    sent: Number(summary?.[1] ?? times.length),
    received: Number(summary?.[2] ?? times.length),
    min: times[0]!,
    median: quantile(times, 0.5),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    p95: quantile(times, 0.95),
    max: times[times.length - 1]!,
  };
}

/** Ping every 10 ms; `seconds` bounds it (deadline), `count` stops it earlier. */
function pingArgs(t: Tunnel, seconds: number, count?: number): string[] {
  return ['-n', '-i', '0.01', '-W', '1', '-w', String(seconds), ...(count ? ['-c', String(count)] : []), t.addr[1]];
}

// ---- measurements -------------------------------------------------------------------------

export async function measureIdlePing(t: Tunnel, seconds: number): Promise<RttStats | null> {
  const r = await run('ping', pingArgs(t, seconds + 2, Math.round(seconds * 100)), {
    ns: NS[0],
    allowFail: true,
    timeoutMs: (seconds + 10) * 1000,
  });
  return parsePing(r.stdout);
}

export async function measureTcp(t: Tunnel, seconds: number): Promise<TcpSample> {
  // The ping starts after slow start and ends before the transfer does.
  const pingSeconds = Math.max(1, seconds - 1);
  let ping: Background | undefined;
  const pingTimer = setTimeout(() => {
    ping = background('ping', pingArgs(t, pingSeconds), { ns: NS[0] });
  }, 500);
  const mark0 = loadMark();
  const cpu0 = tunnelCpu(t);
  let end: IperfEnd;
  try {
    end = await iperfClient(t, TCP_CC_CHOSEN === null ? [] : ['--congestion', TCP_CC_CHOSEN], seconds);
  } finally {
    clearTimeout(pingTimer);
  }
  const cpu1 = tunnelCpu(t);
  // ping_exited before the load mark, so its CPU is counted as ours (a reaped child).
  if (ping) await Promise.race([ping.exited, sleep(3000)]);
  await ping?.stop(500);
  const mark1 = loadMark();
  const bytes = end.sum_received.bytes;
  const cpu = cpu1 - cpu0;
  return {
    seconds: end.sum_received.seconds,
    bytes,
    mbps: (bytes * 8) / end.sum_received.seconds / 1e6,
    retransmits: end.sum_sent.retransmits ?? 0,
    cpuSeconds: cpu,
    cpuSecondsPerGB: bytes > 0 ? cpu / (bytes / 1e9) : NaN,
    rtt: ping ? parsePing(ping.output()) : null,
    otherLoad: otherLoad(mark0, mark1),
  };
}

export async function measureUdp(t: Tunnel, size: number, seconds: number): Promise<UdpSample> {
  const mark0 = loadMark();
  const cpu0 = tunnelCpu(t);
  const end = await iperfClient(t, ['--udp', '--bitrate', '0', '--length', String(size)], seconds);
  const cpu1 = tunnelCpu(t);
  const mark1 = loadMark();
  const received = end.sum_received.bytes / size;
  const cpu = cpu1 - cpu0;
  return {
    size,
    seconds: end.sum_received.seconds,
    sentPps: end.sum_sent.bytes / size / end.sum_sent.seconds,
    receivedPps: received / end.sum_received.seconds,
    lostPercent: end.sum?.lost_percent ?? NaN,
    cpuSeconds: cpu,
    cpuMicrosPerPacket: received > 0 ? (cpu / received) * 1e6 : NaN,
    otherLoad: otherLoad(mark0, mark1),
  };
}

/** First contact through a fresh tunnel (WireGuard handshakes on the first packet). */
export async function warmUp(t: Tunnel): Promise<void> {
  await waitFor(
    `a ping through ${t.id}`,
    async () => (await run('ping', ['-n', '-c', '1', '-W', '1', t.addr[1]], { ns: NS[0], allowFail: true })).code === 0,
    15_000,
    100,
  );
}
