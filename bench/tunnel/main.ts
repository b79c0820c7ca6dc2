/**
 * Tunnel benchmark: our data channel against OpenVPN 2.6 (userspace) and wireguard-go, in one
 * run on the same machine, between two network namespaces joined by a veth.
 *
 * For each tunnel (ours and OpenVPN with AES-256-GCM and with CHACHA20-POLY1305; our whole stack,
 * ovpn-dco --config, from the same config files as the OpenVPN row, with AES-256-GCM; wireguard-go):
 *   - iperf3 TCP throughput, a → b
 *   - ping RTT (every 10 ms) while that TCP transfer runs, and idle
 *   - CPU seconds per GB: utime+stime of the tunnel processes at both ends over the TCP run
 *   - iperf3 UDP packets/s received at b, unlimited send rate, 64- and 1400-byte payloads
 * All six tunnels are up at once; rounds go metric by metric through all tunnels, starting
 * with a different tunnel each round, so drift in the machine's load spreads over all of them.
 * Figures are medians over rounds; every sample is kept in the JSON.
 *
 *   npm run bench:tunnel                 (as root; installs openvpn, wireguard-go, wg, iperf3)
 *   BENCH_QUICK=1 npm run bench:tunnel   one round of 2-second runs, for development
 *   BENCH_ROUNDS=n BENCH_SECONDS=s       override rounds and seconds per TCP/UDP run
 *   BENCH_ONLY=ours-aes,openvpn-aes      a subset of the tunnels
 *   BENCH_TCP_CC=cubic                   the iperf3 sender's congestion control (default: the host's)
 *   BENCH_OUT=dir                        where results go (default bench/results of the repo)
 *
 * Writes tunnel.json and tunnel.svg; a quick run writes tunnel-quick.json / tunnel-quick.svg so
 * it never overwrites the committed full run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { chartOf } from './chart.js';
import {
  loadMark,
  measureIdlePing,
  measureTcp,
  measureUdp,
  otherLoad,
  tcpCongestionControl,
  warmUp,
} from './measure.js';
import { NS, setupNamespaces } from './netns.js';
import { figures, METRICS, newSamples, ratios, spread, type TunnelSamples, table } from './report.js';
import { commandExists, installCleanupHandlers, onCleanup, run, runMain } from './sys.js';
import { MTU, makePki, OVPN_CLI, plans, REPO_ROOT, type Tunnel } from './tunnels.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 5));
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 2 : 5));
const PING_IDLE_SECONDS = QUICK ? 1 : 2;
const UDP_SIZES = [64, 1400] as const;
const ONLY = process.env.BENCH_ONLY?.split(',').filter(Boolean);
const OUT_DIR = process.env.BENCH_OUT ?? join(REPO_ROOT, 'bench/results');

/** Commands the benchmark needs, and the Debian package that brings each. */
const TOOLS: [string, string][] = [
  ['openvpn', 'openvpn'],
  ['wireguard-go', 'wireguard-go'],
  ['wg', 'wireguard-tools'],
  ['iperf3', 'iperf3'],
  ['openssl', 'openssl'],
  ['ip', 'iproute2'],
  ['ss', 'iproute2'],
  ['ping', 'iputils-ping'],
];

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

async function ensureTools(): Promise<void> {
  const missing = [...new Set(TOOLS.filter(([cmd]) => !commandExists(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  log(`==> installing ${missing.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update'], { env, timeoutMs: 300_000 });
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, timeoutMs: 600_000 });
  const still = TOOLS.filter(([cmd]) => !commandExists(cmd)).map(([cmd]) => cmd);
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

function dpkgVersion(pkg: string): string {
  return spawnSync('dpkg-query', ['-W', '-f', '$' + '{Version}', pkg], { encoding: 'utf8' }).stdout?.trim() ?? '';
}

function machine(): object {
  const os = readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="(.*)"/)?.[1] ?? '';
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: firstLine('uname', ['-r']),
    os,
    virtualization: firstLine('systemd-detect-virt', []) || 'unknown',
  };
}

function versions(): { ours: { node: string } & Record<string, unknown> } & Record<string, unknown> {
  const git = (args: string[]) =>
    spawnSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
  return {
    ours: {
      commit: git(['rev-parse', 'HEAD']),
      srcCommit: git(['log', '-1', '--format=%H', '--', 'src', 'native']),
      dirty: git(['status', '--porcelain', '--', 'src', 'native']) !== '',
      node: process.version,
      openssl: process.versions.openssl,
      cli: OVPN_CLI,
    },
    openvpn: { version: firstLine('openvpn', ['--version']), package: dpkgVersion('openvpn') },
    wireguardGo: {
      version: firstLine('wireguard-go', ['--version']),
      package: dpkgVersion('wireguard-go'),
      wg: firstLine('wg', ['--version']),
    },
    iperf3: firstLine('iperf3', ['--version']),
    ping: firstLine('ping', ['-V']),
  };
}

function fail(message: string): never {
  process.stderr.write(`tunnel bench: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) fail('needs root (network namespaces, TUN devices): sudo npm run bench:tunnel');
  if (!existsSync(OVPN_CLI)) fail(`${OVPN_CLI} is missing: run npm run build`);
  if (!existsSync(join(REPO_ROOT, 'build/Release/ovpn_io.node')))
    fail('the native shim is not built: run npm install (or npm run build)');
  installCleanupHandlers();
  await ensureTools();

  const started = new Date();
  const load0 = loadavg();
  const mark0 = loadMark();
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-bench-'));
  onCleanup('temporary directory', () => rmSync(dir, { recursive: true, force: true }));

  log(`==> ${QUICK ? 'quick run: ' : ''}${ROUNDS} round(s), ${SECONDS} s per TCP/UDP run; namespaces ${NS.join(', ')}`);
  await makePki(dir);
  await setupNamespaces();
  const tcpCc = tcpCongestionControl();
  log(`    TCP congestion control of the iperf3 sender: ${tcpCc}`);
  const tunnels: Tunnel[] = [];
  for (const plan of plans()) {
    if (ONLY && !ONLY.includes(plan.id)) continue;
    const t = await plan.start(dir);
    tunnels.push(t);
    await warmUp(t);
    log(`    ${t.id.padEnd(15)} up: ${t.addr[0]} -> ${t.addr[1]}, pids ${t.pids.join(' ')}; ${t.confirmed}`);
  }
  for (const t of tunnels)
    if (!tunnels.some((b) => b.id === t.baseline)) fail(`${t.id} needs its baseline ${t.baseline} in BENCH_ONLY`);

  const samples: Record<string, TunnelSamples> = Object.fromEntries(tunnels.map((t) => [t.id, newSamples()]));
  const failures: { tunnel: string; metric: string; round: number; error: string }[] = [];
  const attempt = async <T>(t: Tunnel, metric: string, round: number, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (error) {
      const message = (error as Error).message;
      failures.push({ tunnel: t.id, metric, round, error: message });
      log(`    ${t.id} ${metric}: FAILED ${message.split('\n')[0]}`);
      return null;
    }
  };

  for (let round = 0; round < ROUNDS; round++) {
    const order = tunnels.map((_, i) => tunnels[(i + round) % tunnels.length]!);
    log(`==> round ${round + 1}/${ROUNDS}`);
    for (const t of order) {
      const r = await attempt(t, 'ping idle', round, () => measureIdlePing(t, PING_IDLE_SECONDS));
      if (r) samples[t.id]!.pingIdle.push(r);
      if (r) log(`    ${t.id.padEnd(15)} ping idle   median ${r.median.toFixed(3)} ms, ${r.received}/${r.sent}`);
    }
    for (const t of order) {
      const r = await attempt(t, 'tcp', round, () => measureTcp(t, SECONDS));
      if (!r) continue;
      samples[t.id]!.tcp.push(r);
      log(
        `    ${t.id.padEnd(15)} tcp         ${r.mbps.toFixed(0)} Mbit/s, ${r.retransmits} retr, ${r.cpuSecondsPerGB.toFixed(2)} CPU s/GB, ` +
          `rtt ${r.rtt ? `${r.rtt.median.toFixed(2)} ms (${r.rtt.received}/${r.rtt.sent})` : 'none'}, other load ${r.otherLoad.toFixed(2)}`,
      );
    }
    for (const size of UDP_SIZES) {
      for (const t of order) {
        const r = await attempt(t, `udp ${size}`, round, () => measureUdp(t, size, SECONDS));
        if (!r) continue;
        (size === 64 ? samples[t.id]!.udp64 : samples[t.id]!.udp1400).push(r);
        log(
          `    ${t.id.padEnd(15)} udp ${String(size).padEnd(7)} ${(r.receivedPps / 1000).toFixed(1)} kpps received of ${(r.sentPps / 1000).toFixed(1)} sent, ${r.cpuMicrosPerPacket.toFixed(2)} µs CPU/pkt`,
        );
      }
    }
  }

  const mark1 = loadMark();
  const load1 = loadavg();
  const figs = figures(samples);
  const rat = ratios(tunnels, figs);
  log('');
  log(table(tunnels, figs, rat));

  // How noisy was it: the rest of the machine's CPU use during each sample, and the spread of
  // each figure over its samples.
  const others = Object.values(samples).flatMap((s) => [...s.tcp, ...s.udp64, ...s.udp1400].map((x) => x.otherLoad));
  const other = spread(others);
  const worstCv = Object.entries(figs)
    .flatMap(([id, f]) => METRICS.map((m) => ({ id, metric: m.key, cv: f[m.key].cv })))
    .filter((x) => Number.isFinite(x.cv))
    .sort((a, b) => b.cv - a.cv);
  const tcpCv = spread(Object.values(figs).map((f) => f.tcpMbps.cv));
  const noise = {
    loadavgStart: load0,
    loadavgEnd: load1,
    otherLoadCores: {
      median: other.median,
      max: other.max,
      note: "CPU (in cores) used outside the processes of our namespaces and this process during each TCP/UDP sample: other sessions' work, plus kernel threads (ksoftirqd) that may be serving our own traffic, so an upper bound; 0 = the machine was ours alone",
    },
    otherLoadWholeRun: otherLoad(mark0, mark1),
    tcpThroughputCv: { median: tcpCv.median, max: tcpCv.max },
    worstCv: worstCv.slice(0, 3),
    failures: failures.length,
    note: '',
  };
  noise.note =
    `CPU used outside the benchmark's processes during samples (other sessions, kernel threads): median ${other.median.toFixed(2)} of 2 cores, max ${other.max.toFixed(2)}. ` +
    `TCP throughput coefficient of variation across rounds: median ${(tcpCv.median * 100).toFixed(1)}%, worst ${(tcpCv.max * 100).toFixed(1)}%. ` +
    `Worst spread: ${worstCv[0] ? `${worstCv[0].id} ${worstCv[0].metric} ${(worstCv[0].cv * 100).toFixed(1)}%` : 'n/a'}. ${failures.length} failed measurement(s).`;
  log('');
  log(`noise: ${noise.note}`);

  const info = tunnels.map((t) => ({
    id: t.id,
    label: t.label,
    impl: t.impl,
    cipher: t.cipher,
    baseline: t.baseline,
    addr: t.addr,
    confirmed: t.confirmed,
  }));
  const result = {
    benchmark: 'tunnel',
    date: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    quick: QUICK,
    config: {
      rounds: ROUNDS,
      secondsPerRun: SECONDS,
      pingIdleSeconds: PING_IDLE_SECONDS,
      pingIntervalMs: 10,
      udpSizes: UDP_SIZES,
      udpBitrate: 'unlimited (iperf3 -b 0)',
      innerMtu: MTU,
      tcpCongestionControl: tcpCc,
      direction: `${NS[0]} -> ${NS[1]} (iperf3 client in ${NS[0]})`,
      cpu: 'utime+stime of the tunnel processes in both namespaces over the TCP run, divided by GB received by iperf3',
      order:
        'each round: idle ping, TCP (+ping under load), UDP 64, UDP 1400, each through all tunnels, starting one tunnel later every round',
    },
    machine: machine(),
    versions: versions(),
    tunnels: info,
    medians: Object.fromEntries(
      Object.entries(figs).map(([id, f]) => [id, Object.fromEntries(METRICS.map((m) => [m.key, f[m.key].median]))]),
    ),
    ratiosToOpenVpn: rat,
    spread: figs,
    noise,
    failures,
    samples,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const base = QUICK ? 'tunnel-quick' : 'tunnel';
  writeFileSync(join(OUT_DIR, `${base}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const svg = chartOf(result);
  writeFileSync(join(OUT_DIR, `${base}.svg`), svg);
  log(`\nwrote ${join(OUT_DIR, `${base}.json`)} and ${base}.svg`);
}

runMain('tunnel bench', main);
