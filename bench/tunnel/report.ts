/**
 * Turning samples into the figures of the report: medians, spread, ratios to OpenVPN, and the
 * table printed at the end of a run.
 */
import type { RttStats, TcpSample, UdpSample } from './measure.js';

export interface TunnelSamples {
  tcp: TcpSample[];
  udp64: UdpSample[];
  udp1400: UdpSample[];
  pingIdle: RttStats[];
}

export const newSamples = (): TunnelSamples => ({ tcp: [], udp64: [], udp1400: [], pingIdle: [] });

export type MetricKey = 'tcpMbps' | 'udp64Kpps' | 'udp1400Kpps' | 'rttIdleMs' | 'rttLoadMs' | 'cpuSecondsPerGB';

export interface Metric {
  key: MetricKey;
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  /** Decimals when printed. */
  digits: number;
  values: (s: TunnelSamples) => number[];
}

export const METRICS: readonly Metric[] = [
  {
    key: 'tcpMbps',
    title: 'TCP throughput',
    unit: 'Mbit/s',
    better: 'higher',
    digits: 0,
    values: (s) => s.tcp.map((x) => x.mbps),
  },
  {
    key: 'udp64Kpps',
    title: 'UDP, 64-byte payload',
    unit: 'kpps received',
    better: 'higher',
    digits: 1,
    values: (s) => s.udp64.map((x) => x.receivedPps / 1000),
  },
  {
    key: 'udp1400Kpps',
    title: 'UDP, 1400-byte payload',
    unit: 'kpps received',
    better: 'higher',
    digits: 1,
    values: (s) => s.udp1400.map((x) => x.receivedPps / 1000),
  },
  {
    key: 'rttIdleMs',
    title: 'Ping RTT, idle',
    unit: 'ms (median)',
    better: 'lower',
    digits: 3,
    values: (s) => s.pingIdle.map((x) => x.median),
  },
  {
    key: 'rttLoadMs',
    title: 'Ping RTT under TCP load',
    unit: 'ms (median)',
    better: 'lower',
    digits: 2,
    values: (s) => s.tcp.flatMap((x) => (x.rtt ? [x.rtt.median] : [])),
  },
  {
    key: 'cpuSecondsPerGB',
    title: 'CPU per GB, TCP (both ends)',
    unit: 'CPU s/GB',
    better: 'lower',
    digits: 2,
    values: (s) => s.tcp.map((x) => x.cpuSecondsPerGB),
  },
];

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Coefficient of variation: standard deviation / mean. */
  cv: number;
}

export function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function spread(xs: readonly number[]): Spread {
  const s = xs.filter(Number.isFinite);
  if (s.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, cv: NaN };
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  return { n: s.length, median: median(s), min: Math.min(...s), max: Math.max(...s), cv: s.length > 1 ? sd / mean : 0 };
}

export interface TunnelInfo {
  id: string;
  label: string;
  baseline: string;
}

export type Figures = Record<string, Record<MetricKey, Spread>>;
export type Ratios = Record<string, Record<MetricKey, number>>;

export function figures(samples: Record<string, TunnelSamples>): Figures {
  const out: Figures = {};
  for (const [id, s] of Object.entries(samples)) {
    out[id] = Object.fromEntries(METRICS.map((m) => [m.key, spread(m.values(s))])) as Record<MetricKey, Spread>;
  }
  return out;
}

/** Each median divided by the median of the same metric for the tunnel's OpenVPN baseline. */
export function ratios(tunnels: readonly TunnelInfo[], figs: Figures): Ratios {
  const out: Ratios = {};
  for (const t of tunnels) {
    out[t.id] = Object.fromEntries(
      METRICS.map((m) => [m.key, figs[t.id]![m.key].median / figs[t.baseline]![m.key].median]),
    ) as Record<MetricKey, number>;
  }
  return out;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

/** The table printed at the end: one row per tunnel, each cell "median (ratio to OpenVPN)". */
export function table(tunnels: readonly TunnelInfo[], figs: Figures, rat: Ratios): string {
  const head = ['tunnel', ...METRICS.map((m) => `${m.title} [${m.unit}]`)];
  const rows = tunnels.map((t) => [
    t.label,
    ...METRICS.map((m) => `${fmt(figs[t.id]![m.key].median, m.digits)} (${fmt(rat[t.id]![m.key], 2)}x)`),
  ]);
  // Wrap the long headers onto two lines at a space near the middle.
  const split = (h: string): [string, string] => {
    if (h.length <= 18) return [h, ''];
    const mid = h.length / 2;
    let best = -1;
    for (let i = 0; i < h.length; i++)
      if (h[i] === ' ' && (best < 0 || Math.abs(i - mid) < Math.abs(best - mid))) best = i;
    return best < 0 ? [h, ''] : [h.slice(0, best), h.slice(best + 1)];
  };
  const heads = head.map(split);
  const widths = head.map((_, c) =>
    Math.max(heads[c]![0].length, heads[c]![1].length, ...rows.map((r) => r[c]!.length)),
  );
  const line = (cells: string[]) =>
    cells.map((x, c) => (c === 0 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join('  ');
  return [
    line(heads.map((h) => h[0])),
    line(heads.map((h) => h[1])),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    '(x) = ratio to OpenVPN with the same cipher (wireguard-go: to OpenVPN AES-256-GCM). Medians of every sample.',
    'Higher is better for throughput and packets/s, lower for RTT and CPU/GB.',
  ].join('\n');
}
