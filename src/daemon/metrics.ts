/**
 * Prometheus metrics of one interface, served on an opt-in HTTP port (`--metrics-port`,
 * `OVPN_METRICS_PORT`) bound to loopback unless told otherwise: the text exposition format
 * (version 0.0.4) written here directly, so the daemon needs no dependency for it. Every scrape
 * reads the counters the control socket reports (peer-get, iface-get); nothing on the packet
 * path counts anything for metrics.
 */
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { kebabCase } from '../control/protocol.js';
import type { InterfaceInfo, PeerInfo } from '../device/ovpn-interface.js';
import type { PeerStats } from '../peer/peer.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What one scrape shows: the interface, its peers, the control socket and the process. */
export interface MetricsSnapshot {
  info: InterfaceInfo;
  peers: PeerInfo[];
  control: { notificationsDropped: number; keySwaps: number; keySwapNotifications: number; subscribers: number };
  process: {
    cpuSeconds: number;
    residentBytes: number;
    heapUsedBytes: number;
    startTimeSeconds: number;
    openFds: number;
  };
}

type Labels = Record<string, string | number>;
type Kind = 'counter' | 'gauge';

/** Families in the order first added, each with its HELP and TYPE lines once. */
class Exposition {
  private readonly families = new Map<string, { help: string; kind: Kind; samples: string[] }>();

  add(name: string, kind: Kind, help: string, labels: Labels, value: number): void {
    let family = this.families.get(name);
    if (family === undefined) {
      family = { help, kind, samples: [] };
      this.families.set(name, family);
    }
    const pairs = Object.entries(labels).map(([key, v]) => `${key}="${escapeLabel(String(v))}"`);
    family.samples.push(`${name}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${value}`);
  }

  text(): string {
    const lines: string[] = [];
    for (const [name, family] of this.families) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.kind}`, ...family.samples);
    }
    return `${lines.join('\n')}\n`;
  }
}

/** Label values escape backslash, double quote and newline (the exposition format's rule). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** `linkRxBytes` → `ovpn_peer_link_rx_bytes_total`, with its help text. */
function peerStatFamily(stat: keyof PeerStats): [string, string] {
  const words = kebabCase(stat).split('-'); // link rx bytes
  const [layer, dir, unit] = words as [string, string, string];
  const what = layer === 'vpn' ? 'inner (VPN) traffic' : 'outer (LINK) traffic';
  return [
    `ovpn_peer_${words.join('_')}_total`,
    `${unit === 'bytes' ? 'Bytes' : 'Packets'} ${dir === 'rx' ? 'received' : 'sent'} of the peer's ${what}.`,
  ];
}

const PEER_STATS: (keyof PeerStats)[] = [
  'vpnRxBytes',
  'vpnTxBytes',
  'vpnRxPackets',
  'vpnTxPackets',
  'linkRxBytes',
  'linkTxBytes',
  'linkRxPackets',
  'linkTxPackets',
];

/** The exposition text of a snapshot. */
export function renderMetrics(s: MetricsSnapshot): string {
  const out = new Exposition();
  const ifname = s.info.ifname;
  out.add('ovpn_peers', 'gauge', 'Peers of the interface.', { ifname, mode: s.info.mode }, s.info.peers);
  for (const peer of s.peers) {
    const labels = { ifname, peer_id: peer.id };
    for (const stat of PEER_STATS) {
      const [name, help] = peerStatFamily(stat);
      out.add(name, 'counter', help, labels, peer[stat]);
    }
  }
  for (const peer of s.peers) {
    for (const [reason, value] of Object.entries(peer.drops)) {
      const labels = { ifname, peer_id: peer.id, reason: kebabCase(reason) };
      out.add('ovpn_peer_drops_total', 'counter', 'Packets of the peer refused, by reason.', labels, value);
    }
  }
  for (const [reason, value] of Object.entries(s.info.drops)) {
    const help = 'Packets refused before a peer was known, by reason.';
    out.add('ovpn_interface_drops_total', 'counter', help, { ifname, reason: kebabCase(reason) }, value);
  }
  const queueHelp = 'Packets dropped by the transmit flow queue (CoDel, or over its limits).';
  out.add('ovpn_tx_queue_drops_total', 'counter', queueHelp, { ifname, reason: 'codel' }, s.info.txQueue.codelDrops);
  out.add(
    'ovpn_tx_queue_drops_total',
    'counter',
    queueHelp,
    { ifname, reason: 'overflow' },
    s.info.txQueue.overflowDrops,
  );
  out.add(
    'ovpn_tx_queue_length',
    'gauge',
    'Packets waiting in the transmit flow queue.',
    { ifname },
    s.info.txQueue.length,
  );
  const controlHelp = 'Control packets waiting to be handed to the control plane.';
  out.add('ovpn_control_queue_length', 'gauge', controlHelp, { ifname }, s.info.controlQueue);
  out.add('ovpn_key_swaps_total', 'counter', 'key-swap requests carried out.', { ifname }, s.control.keySwaps);
  const ntfHelp = 'key-swap-ntf sent: a key neared the end of its packet-ids.';
  out.add('ovpn_key_swap_notifications_total', 'counter', ntfHelp, { ifname }, s.control.keySwapNotifications);
  const missedHelp = 'Notifications missed by subscribers that did not read.';
  out.add('ovpn_notifications_dropped_total', 'counter', missedHelp, { ifname }, s.control.notificationsDropped);
  const subscribersHelp = 'Connections subscribed to notifications.';
  out.add('ovpn_control_subscribers', 'gauge', subscribersHelp, { ifname }, s.control.subscribers);
  const p = s.process;
  out.add('process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds.', {}, p.cpuSeconds);
  out.add('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', {}, p.residentBytes);
  out.add('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.', {}, p.heapUsedBytes);
  out.add(
    'process_start_time_seconds',
    'gauge',
    'Start time of the process, seconds since the epoch.',
    {},
    p.startTimeSeconds,
  );
  out.add('process_open_fds', 'gauge', 'Open file descriptors.', {}, p.openFds);
  return out.text();
}

const startTimeSeconds = Math.round(Date.now() / 1000 - process.uptime());

/** This process's CPU, memory and descriptors. */
export function processSnapshot(): MetricsSnapshot['process'] {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  let openFds = 0;
  try {
    openFds = readdirSync('/proc/self/fd').length;
  } catch {
    // not Linux: reported as 0
  }
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    startTimeSeconds,
    openFds,
  };
}

/** Serves `GET /metrics` with what `snapshot` returns at each scrape; anything else is a 404. */
export async function serveMetrics(snapshot: () => MetricsSnapshot, port: number, address: string): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(renderMetrics(snapshot()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return server;
}
