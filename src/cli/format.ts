/** Human-readable output of ovpn-cli, in the layout of the original tool. */
import type { Notification } from '../control/protocol.js';

export function formatPeer(peer: Record<string, unknown>): string {
  const lines = [`* Peer ${String(peer.id)}`];
  if (peer['vpn-ipv4'] !== undefined) lines.push(`\tVPN IPv4: ${String(peer['vpn-ipv4'])}`);
  if (peer['vpn-ipv6'] !== undefined) lines.push(`\tVPN IPv6: ${String(peer['vpn-ipv6'])}`);
  const v6 = peer['remote-ipv6'] !== undefined;
  const local = String(peer[v6 ? 'local-ipv6' : 'local-ipv4'] ?? (v6 ? '::' : '0.0.0.0'));
  const remote = String(peer[v6 ? 'remote-ipv6' : 'remote-ipv4'] ?? '');
  lines.push(`\tRemote: ${v6 ? `[${remote}]` : remote}:${String(peer['remote-port'])}`);
  lines.push(`\tLocal: ${v6 ? `[${local}]` : local}:${String(peer['local-port'])}`);
  lines.push(`\tKeepalive interval: ${String(peer['keepalive-interval'])} sec`);
  lines.push(`\tKeepalive timeout: ${String(peer['keepalive-timeout'])} sec`);
  for (const [label, key] of [
    ['VPN RX bytes', 'vpn-rx-bytes'],
    ['VPN TX bytes', 'vpn-tx-bytes'],
    ['VPN RX packets', 'vpn-rx-packets'],
    ['VPN TX packets', 'vpn-tx-packets'],
    ['LINK RX bytes', 'link-rx-bytes'],
    ['LINK TX bytes', 'link-tx-bytes'],
    ['LINK RX packets', 'link-rx-packets'],
    ['LINK TX packets', 'link-tx-packets'],
  ] as const) {
    lines.push(`\t${label}: ${String(peer[key])}`);
  }
  lines.push(`\tDrops: ${formatDrops(peer.drops as Record<string, number>)}`);
  const age = peer['last-rx-age-ms'];
  lines.push(`\tLatest packet: ${age === undefined ? 'never' : ago(Number(age))}`);
  return lines.join('\n');
}

export function formatKey(key: Record<string, unknown>): string {
  return [
    `* Peer ${String(key['peer-id'])}`,
    `\t- Slot: ${String(key.slot)}`,
    `\t- Key ID: ${String(key['key-id'])}`,
    `\t- Cipher: ${String(key['cipher-alg'])}`,
  ].join('\n');
}

const NTF_NAMES: Record<string, string> = {
  'peer-del-ntf': 'CMD_PEER_DEL_NTF',
  'key-swap-ntf': 'CMD_KEY_SWAP_NTF',
  'peer-float-ntf': 'CMD_PEER_FLOAT_NTF',
  'packet-ntf': 'CMD_PACKET_NTF',
  'iface-del-ntf': 'CMD_IFACE_DEL_NTF',
  'warning-ntf': 'WARNING',
};

export function formatNotification(ntf: Notification): string {
  const { ntf: name, ifname, ...attrs } = ntf;
  return `received ${NTF_NAMES[name] ?? name} on ${ifname}: ${JSON.stringify(attrs)}`;
}

/** Drop counters that moved, as "replay 2, auth 1"; "none" when all are 0. */
export function formatDrops(drops: Record<string, number> | undefined): string {
  const moved = Object.entries(drops ?? {}).filter(([, n]) => n > 0);
  return moved.length === 0 ? 'none' : moved.map(([name, n]) => `${name} ${n}`).join(', ');
}

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units: "512 B", "1.50 KiB", "3.20 MiB". */
export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(2)} ${UNITS[unit]}`;
}

/** An age as wg says it: "12 seconds ago", "1 hour, 3 minutes ago". */
export function ago(ms: number): string {
  let seconds = Math.floor(ms / 1000);
  if (seconds === 0) return 'less than a second ago';
  const parts: string[] = [];
  for (const [unit, size] of [
    ['day', 86400],
    ['hour', 3600],
    ['minute', 60],
    ['second', 1],
  ] as const) {
    const n = Math.floor(seconds / size);
    seconds -= n * size;
    if (n > 0) parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`);
  }
  return `${parts.join(', ')} ago`;
}

/** A reply's attributes one per line; nested objects (drops, tx-queue) as "name value, ...". */
export function formatAttrs(attrs: Record<string, unknown>): string {
  const value = (v: unknown) =>
    typeof v === 'object' && v !== null
      ? Object.entries(v)
          .map(([k, n]) => `${k} ${String(n)}`)
          .join(', ')
      : String(v);
  return Object.entries(attrs)
    .map(([k, v]) => `${k}: ${value(v)}`)
    .join('\n');
}
