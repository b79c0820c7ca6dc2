/**
 * The options of a PUSH_REPLY that a pull client acts on, read from the list the session hands
 * over: its addresses (`ifconfig` with `topology`, `ifconfig-ipv6`), routes (`route`,
 * `route-ipv6`, `route-gateway`) and ping settings; and what of them goes on the TUN, as `ip`
 * arguments (tunCommands), merged with the config's own `route`s. Nothing here touches the system.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface PushedRoute {
  network: string;
  netmask: string;
  gateway?: string;
  metric?: number;
}

export interface PushedRouteIpv6 {
  /** NETWORK/BITS. */
  prefix: string;
  gateway?: string;
  metric?: number;
}

export interface PushedConfig {
  /** `ifconfig LOCAL NETMASK` (topology subnet) or `ifconfig LOCAL REMOTE` (net30, p2p). */
  ifconfig?: { local: string; prefixLength?: number; remote?: string };
  /** `ifconfig-ipv6 LOCAL/BITS REMOTE`. */
  ifconfigIpv6?: { local: string; prefixLength: number };
  topology?: string;
  routeGateway?: string;
  routes: PushedRoute[];
  routesIpv6: PushedRouteIpv6[];
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

const count = (text: string | undefined) => {
  const n = Number(text);
  return text !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined;
};

export function parsePushed(options: readonly string[]): PushedConfig {
  const config: PushedConfig = { routes: [], routesIpv6: [], other: [] };
  const ifconfigs: string[][] = [];
  for (const option of options) {
    const [name, ...args] = option.split(' ');
    const metric = count(args[name === 'route' ? 3 : 2]);
    if (name === 'ifconfig' && args.length === 2) ifconfigs.push(args);
    else if (name === 'topology' && args[0] !== undefined) config.topology = args[0];
    else if (name === 'route-gateway' && args[0] !== undefined) config.routeGateway = args[0];
    else if (name === 'route' && args[0] !== undefined) {
      const route: PushedRoute = { network: args[0], netmask: args[1] ?? '255.255.255.255' };
      if (args[2] !== undefined && args[2] !== 'vpn_gateway') route.gateway = args[2];
      if (metric !== undefined) route.metric = metric;
      config.routes.push(route);
    } else if (name === 'route-ipv6' && args[0] !== undefined) {
      const route: PushedRouteIpv6 = { prefix: args[0].includes('/') ? args[0] : `${args[0]}/128` };
      if (args[1] !== undefined) route.gateway = args[1];
      if (metric !== undefined) route.metric = metric;
      config.routesIpv6.push(route);
    } else if (name === 'ifconfig-ipv6' && args[0] !== undefined) {
      const [local = '', bits = '64'] = args[0].split('/');
      config.ifconfigIpv6 = { local, prefixLength: Number(bits) };
    } else if (name === 'ping' && count(args[0]) !== undefined) config.ping = count(args[0])!;
    else if (name === 'ping-restart' && count(args[0]) !== undefined) config.pingRestart = count(args[0])!;
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

/** The config's own TUN settings with what the server pushed: its addresses win, the routes add up. */
export function mergePushed(own: Omit<PushedConfig, 'other'>, pushed: PushedConfig): Omit<PushedConfig, 'other'> {
  const { other: _, ...settings } = pushed;
  return {
    ...own,
    ...settings,
    routes: [...own.routes, ...pushed.routes],
    routesIpv6: [...own.routesIpv6, ...pushed.routesIpv6],
  };
}

/** One address or route on the TUN. */
export interface TunSetting {
  family: 4 | 6;
  object: 'addr' | 'route';
  /** What follows `ip [-6] addr|route add`, before `dev NAME`. */
  args: string[];
}

/** The `ip` command line that adds or deletes a setting on device `dev`. */
export function ipArgs(setting: TunSetting, verb: 'add' | 'del', dev: string): string[] {
  return [...(setting.family === 6 ? ['-6'] : []), setting.object, verb, ...setting.args, 'dev', dev];
}

/**
 * Addresses and routes for the TUN, as OpenVPN sets them on Linux: IPv4 routes `via` the route
 * gateway (pushed `route-gateway`, else the point-to-point peer), IPv6 routes on the device.
 * Routes that name no usable address are left out, each named in `skipped`.
 */
export function tunSettings(settings: Omit<PushedConfig, 'other'>): { settings: TunSetting[]; skipped: string[] } {
  const out: TunSetting[] = [];
  const skipped: string[] = [];
  const { ifconfig, ifconfigIpv6 } = settings;
  if (ifconfig?.prefixLength !== undefined)
    out.push({ family: 4, object: 'addr', args: [`${ifconfig.local}/${ifconfig.prefixLength}`] });
  else if (ifconfig?.remote !== undefined)
    out.push({ family: 4, object: 'addr', args: ['local', ifconfig.local, 'peer', ifconfig.remote] });
  if (ifconfigIpv6 !== undefined)
    out.push({ family: 6, object: 'addr', args: [`${ifconfigIpv6.local}/${ifconfigIpv6.prefixLength}`] });
  const gateway = settings.routeGateway ?? ifconfig?.remote;
  const metric = (m: number | undefined) => (m === undefined ? [] : ['metric', String(m)]);
  for (const r of settings.routes) {
    const prefix = netmaskToPrefix(r.netmask);
    const via = r.gateway ?? gateway;
    if (!isIPv4(r.network) || prefix === undefined || (via !== undefined && !isIPv4(via))) {
      skipped.push(`route ${r.network} ${r.netmask}${r.gateway === undefined ? '' : ` ${r.gateway}`}`);
      continue;
    }
    const args = [`${r.network}/${prefix}`, ...(via === undefined ? [] : ['via', via]), ...metric(r.metric)];
    out.push({ family: 4, object: 'route', args });
  }
  for (const r of settings.routesIpv6) {
    if (!isIPv6(r.prefix.split('/')[0]!)) {
      skipped.push(`route-ipv6 ${r.prefix}`);
      continue;
    }
    out.push({ family: 6, object: 'route', args: [r.prefix, ...metric(r.metric)] });
  }
  return { settings: out, skipped };
}
