/**
 * `ovpn-cli show [IFACE]`, like `wg show`: each interface of this network namespace with its
 * mode and drops, then each peer with its endpoint, VPN addresses, routes, key slots, the last
 * packet received, transfer and drops. With --json the same data: one object for a named
 * interface, an array for all of them.
 */
import { ControlError } from '../control/client.js';
import { ago, formatDrops, humanBytes } from './format.js';
import type { Output } from './output.js';
import { attrs, type Body, liveInterfaces, withClient } from './requests.js';

const SLOTS = ['primary', 'secondary'] as const;

export interface ShownPeer extends Body {
  keys: { primary: Body | null; secondary: Body | null };
  routes: string[];
}

export interface ShownInterface {
  interface: Body;
  peers: ShownPeer[];
}

/** Everything show prints about one interface, read over one connection. */
async function gather(ifname: string): Promise<ShownInterface> {
  return withClient(ifname, async (client) => {
    const info = attrs(await client.request('iface-get'));
    const peers = (await client.request('peer-get')).peers as Body[];
    const keyOf = async (peerId: unknown, slot: (typeof SLOTS)[number]): Promise<Body | null> => {
      try {
        return (await client.request('key-get', { keyconf: { 'peer-id': peerId, slot } })).keyconf as Body;
      } catch (error) {
        if (error instanceof ControlError && error.code === 'ENOENT') return null;
        throw error;
      }
    };
    const shown: ShownPeer[] = [];
    for (const peer of peers) {
      const [primary, secondary] = [await keyOf(peer.id, 'primary'), await keyOf(peer.id, 'secondary')];
      const routes = (await client.request('route-get', { 'peer-id': peer.id })).routes as string[];
      shown.push({ ...peer, keys: { primary, secondary }, routes });
    }
    return { interface: info, peers: shown };
  });
}

function endpoint(peer: Body): string {
  const v6 = peer['remote-ipv6'] !== undefined;
  const remote = peer[v6 ? 'remote-ipv6' : 'remote-ipv4'];
  const local = peer[v6 ? 'local-ipv6' : 'local-ipv4'];
  const at = (address: unknown, port: unknown) => `${v6 ? `[${String(address)}]` : String(address)}:${String(port)}`;
  const transport = String(peer.transport ?? 'udp');
  if (remote === undefined) return `none yet (${transport}, waiting on port ${String(peer['local-port'])})`;
  const from =
    local === undefined ? `local port ${String(peer['local-port'])}` : `local ${at(local, peer['local-port'])}`;
  return `${at(remote, peer['remote-port'])} (${transport}, ${from})`;
}

function keySlot(key: Body | null): string {
  return key === null ? 'none' : `key-id ${String(key['key-id'])}, ${String(key['cipher-alg'])}`;
}

function formatShownPeer(peer: ShownPeer): string[] {
  const vpn = [peer['vpn-ipv4'], peer['vpn-ipv6']].filter((a) => a !== undefined).map(String);
  const interval = Number(peer['keepalive-interval']);
  const timeout = Number(peer['keepalive-timeout']);
  const bytes = (key: string) => humanBytes(Number(peer[key]));
  const lines = [
    `peer: ${String(peer.id)}`,
    `  endpoint: ${endpoint(peer)}`,
    `  vpn addresses: ${vpn.length > 0 ? vpn.join(', ') : 'none'}`,
  ];
  if (peer.routes.length > 0) lines.push(`  routes: ${peer.routes.join(', ')}`);
  lines.push(
    `  keys: primary ${keySlot(peer.keys.primary)}; secondary ${keySlot(peer.keys.secondary)}`,
    `  latest packet: ${peer['last-rx-age-ms'] === undefined ? 'never' : ago(Number(peer['last-rx-age-ms']))}`,
    `  keepalive: ${interval > 0 || timeout > 0 ? `every ${interval} s, timeout ${timeout} s` : 'off'}`,
    `  transfer: ${bytes('vpn-rx-bytes')} received, ${bytes('vpn-tx-bytes')} sent` +
      ` (link: ${bytes('link-rx-bytes')} received, ${bytes('link-tx-bytes')} sent)`,
    `  drops: ${formatDrops(peer.drops as Record<string, number>)}`,
  );
  return lines;
}

function formatShown({ interface: info, peers }: ShownInterface): string {
  const lines = [
    `interface: ${String(info.ifname)}`,
    `  mode: ${String(info.mode)}, ifindex ${String(info.ifindex)}, mtu ${String(info.mtu)}, daemon pid ${String(info.pid)}`,
    `  peers: ${peers.length}`,
    `  drops: ${formatDrops(info.drops as Record<string, number>)}`,
  ];
  for (const peer of peers) lines.push('', ...formatShownPeer(peer));
  return lines.join('\n');
}

export async function showInterfaces(ifname: string | undefined, out: Output): Promise<void> {
  if (ifname !== undefined) {
    const shown = await gather(ifname);
    out.print(formatShown(shown), shown);
    return;
  }
  const all: ShownInterface[] = [];
  for (const name of await liveInterfaces()) all.push(await gather(name));
  if (all.length === 0 && !out.json) {
    process.stderr.write('no ovpn interface in this network namespace\n');
    return;
  }
  out.print(all.map(formatShown).join('\n\n'), all);
}
