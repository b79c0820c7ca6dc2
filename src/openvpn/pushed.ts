/**
 * The options of a PUSH_REPLY that a pull client acts on, read from the list the session hands
 * over: its address (`ifconfig`, with `topology`), routes, and ping settings. Everything else is
 * kept by name for the caller; nothing here touches the system.
 */
import { isIPv4 } from 'node:net';

export interface PushedConfig {
  /** `ifconfig LOCAL NETMASK` (topology subnet) or `ifconfig LOCAL REMOTE` (net30, p2p). */
  ifconfig?: { local: string; prefixLength?: number; remote?: string };
  topology?: string;
  routeGateway?: string;
  routes: { network: string; netmask: string; gateway?: string }[];
  /** Seconds. */
  ping?: number;
  pingRestart?: number;
  /** The options not interpreted above, as pushed. */
  other: string[];
}

/** 255.255.255.0 → 24; undefined when the mask is not contiguous. */
export function netmaskToPrefix(mask: string): number | undefined {
  if (!isIPv4(mask)) return undefined;
  const bits = mask.split('.').reduce((acc, octet) => (acc << 8) | Number(octet), 0) >>> 0;
  const prefix = 32 - Math.log2((~bits >>> 0) + 1);
  return Number.isInteger(prefix) ? prefix : undefined;
}

export function parsePushed(options: readonly string[]): PushedConfig {
  const config: PushedConfig = { routes: [], other: [] };
  const ifconfigs: string[][] = [];
  for (const option of options) {
    const [name, ...args] = option.split(' ');
    const seconds = (text: string | undefined) => {
      const n = Number(text);
      return Number.isInteger(n) && n >= 0 ? n : undefined;
    };
    if (name === 'ifconfig' && args.length === 2) ifconfigs.push(args);
    else if (name === 'topology' && args[0] !== undefined) config.topology = args[0];
    else if (name === 'route-gateway' && args[0] !== undefined) config.routeGateway = args[0];
    else if (name === 'route' && args[0] !== undefined) {
      const route: PushedConfig['routes'][number] = { network: args[0], netmask: args[1] ?? '255.255.255.255' };
      if (args[2] !== undefined) route.gateway = args[2];
      config.routes.push(route);
    } else if (name === 'ping' && seconds(args[0]) !== undefined) config.ping = seconds(args[0])!;
    else if (name === 'ping-restart' && seconds(args[0]) !== undefined) config.pingRestart = seconds(args[0])!;
    else config.other.push(option);
  }
  // Which the second address is depends on the topology, which may come after ifconfig.
  const last = ifconfigs.at(-1);
  if (last !== undefined) {
    const [local, second] = last as [string, string];
    const prefixLength = config.topology === 'subnet' ? netmaskToPrefix(second) : undefined;
    config.ifconfig = prefixLength === undefined ? { local, remote: second } : { local, prefixLength };
  }
  return config;
}
