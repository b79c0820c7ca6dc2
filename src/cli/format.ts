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
