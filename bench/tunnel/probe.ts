/**
 * Where do packets wait under load? Runs iperf3 TCP (a → b) through each tunnel with ping alongside,
 * and samples every few milliseconds the queues a packet can stand in:
 *
 *   UDP rx a/b   bytes waiting in each tunnel process's UDP socket (rx_queue of /proc/PID/net/udp*)
 *   TUN drops    packets the TUN ring of a dropped (tx_dropped: the ring was full)
 *   our queues   each daemon's transmit flow queue and drop counters (iface-get)
 *   sender TCP   with PROBE_SS=1: the iperf3 client's socket memory in local queues (ss skmem t;
 *                stays 0 with our TUN: tun orphans every packet it queues)
 *
 * It prints each queue's median and 95th percentile in bytes and in milliseconds at the measured
 * throughput, beside the ping RTT. A development tool: nothing is written to bench/results.
 *
 *   BENCH_ONLY=ours-aes,openvpn-aes PROBE_SECONDS=6 PROBE_ROUNDS=2 npm run bench:probe
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureTcp, quantile, warmUp } from './measure.js';
import { controlDir, NS, setupNamespaces } from './netns.js';
import { installCleanupHandlers, onCleanup, run, runMain } from './sys.js';
import { makePki, plans, type Tunnel } from './tunnels.js';

const SECONDS = Number(process.env.PROBE_SECONDS ?? 6);
const EVERY_MS = Number(process.env.PROBE_EVERY_MS ?? 5);
const ONLY = process.env.BENCH_ONLY?.split(',').filter(Boolean) ?? ['ours-aes', 'openvpn-aes'];

/** rx_queue and drops of the UDP socket bound to `port`, seen from the netns of `pid`. */
function udpQueue(pid: number, port: number): { rx: number; drops: number } | null {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const file of ['udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13 || !f[1]!.endsWith(hex)) continue;
      const rx = parseInt(f[4]!.split(':')[1]!, 16);
      return { rx, drops: Number(f[f.length - 1]) };
    }
  }
  return null;
}

/** tx_dropped of device `dev` in the netns of `pid` (ring full: the TUN's only drop). */
function tunTxDrops(pid: number, dev: string): number {
  for (const line of readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (rest !== undefined && name!.trim() === dev) return Number(rest.trim().split(/\s+/)[11]);
  }
  return 0;
}

/** Our daemon's iface-get answer, straight from its control socket (ours only; null otherwise). */
async function ifaceGet(t: Tunnel, side: 0 | 1): Promise<Record<string, unknown> | null> {
  const dir = controlDir(NS[side]);
  if (t.impl !== 'ours' || dir === null) return null;
  const path = join(dir, `${t.devs[side]}.sock`);
  return new Promise((resolve) => {
    const s = connect(path);
    let text = '';
    s.on('data', (d) => {
      text += d.toString();
      if (text.includes('\n')) {
        s.end();
        resolve(JSON.parse(text.split('\n')[0]!) as Record<string, unknown>);
      }
    });
    s.on('error', () => resolve(null));
    s.write(`${JSON.stringify({ id: 1, cmd: 'iface-get' })}\n`);
  });
}

async function senderWmem(t: Tunnel): Promise<number | null> {
  const r = await run('ss', ['-Htmn', 'dst', t.addr[1], 'dport', '5201'], { ns: NS[0], allowFail: true });
  let most: number | null = null;
  for (const m of r.stdout.matchAll(/skmem:\(r\d+,rb\d+,t(\d+)/g)) most = Math.max(most ?? 0, Number(m[1]));
  return most;
}

async function probe(t: Tunnel): Promise<void> {
  const port = t.port;
  const rxA: number[] = [];
  const rxB: number[] = [];
  const wmem: number[] = [];
  const drops0 = t.pids.map((p) => udpQueue(p, port)?.drops ?? 0);
  let sampling = true;
  const udpTimer = setInterval(() => {
    const a = udpQueue(t.pids[0]!, port);
    const b = udpQueue(t.pids[1]!, port);
    if (a) rxA.push(a.rx);
    if (b) rxB.push(b.rx);
  }, EVERY_MS);
  const ssLoop = (async () => {
    while (sampling && process.env.PROBE_SS === '1') {
      const w = await senderWmem(t);
      if (w !== null) wmem.push(w);
    }
  })();
  const tunDrops0 = tunTxDrops(t.pids[0]!, t.devs[0]);
  const q0 = await Promise.all([ifaceGet(t, 0), ifaceGet(t, 1)]);
  const sample = await measureTcp(t, SECONDS);
  const q1 = await Promise.all([ifaceGet(t, 0), ifaceGet(t, 1)]);
  sampling = false;
  clearInterval(udpTimer);
  await ssLoop;
  const drops1 = t.pids.map((p) => udpQueue(p, port)?.drops ?? 0);
  const tunDrops = tunTxDrops(t.pids[0]!, t.devs[0]) - tunDrops0;
  const bytesPerMs = (sample.mbps * 1e6) / 8 / 1000;
  const show = (name: string, samples: number[]) => {
    const xs = [...samples].sort((a, b) => a - b);
    return `    ${name.padEnd(12)} median ${(quantile(xs, 0.5) / 1024).toFixed(0).padStart(5)} KiB (${(quantile(xs, 0.5) / bytesPerMs).toFixed(2)} ms)  p95 ${(quantile(xs, 0.95) / 1024).toFixed(0).padStart(5)} KiB (${(quantile(xs, 0.95) / bytesPerMs).toFixed(2)} ms)  n=${xs.length}`;
  };
  process.stdout.write(
    `${t.id}: ${sample.mbps.toFixed(0)} Mbit/s, ${sample.retransmits} retr, ping median ${sample.rtt?.median.toFixed(2)} ms p95 ${sample.rtt?.p95.toFixed(2)} ms; UDP drops a ${drops1[0]! - drops0[0]!} b ${drops1[1]! - drops0[1]!}; TUN tx drops a ${tunDrops}\n` +
      (q1[0]
        ? `    queues a ${JSON.stringify(q0[0]?.['tx-queue'])} -> ${JSON.stringify(q1[0]['tx-queue'])}\n    queues b ${JSON.stringify(q0[1]?.['tx-queue'])} -> ${JSON.stringify(q1[1]?.['tx-queue'])}\n    drops a ${JSON.stringify(q1[0].drops)}\n    drops b ${JSON.stringify(q1[1]?.drops)}\n`
        : '') +
      `${wmem.length > 0 ? `${show('sender TCP', wmem)}\n` : ''}${show('UDP rx b', rxB)}\n${show('UDP rx a', rxA)}\n`,
  );
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-probe-'));
  onCleanup('temporary directory', () => rmSync(dir, { recursive: true, force: true }));
  await makePki(dir);
  await setupNamespaces();
  const tunnels: Tunnel[] = [];
  for (const plan of plans()) {
    if (!ONLY.includes(plan.id)) continue;
    const t = await plan.start(dir);
    await warmUp(t);
    tunnels.push(t);
  }
  const rounds = Number(process.env.PROBE_ROUNDS ?? 1);
  for (let r = 0; r < rounds; r++) for (const t of tunnels) await probe(t);
}

runMain('probe', main);
