/**
 * Follows the kernel's main routing table entries that go out through one interface, so the
 * multi-peer router can apply them the way the kernel module does (a route via a gateway goes
 * to the peer with that VPN address). iproute2 does the netlink work: `ip monitor route` says
 * that something changed, and `ip -j route show dev <ifname>` (and -6) is re-read in full.
 *
 * The monitor is started first and the first dump is read only once the monitor has joined the
 * route multicast groups (seen in /proc/net/netlink), so no change made after `ready` resolved
 * can be missed. Changes are coalesced: one re-dump at most every DEBOUNCE_MS, never two at once.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseIp, parsePrefix, type SystemRoute } from '../core/ip.js';

const DEBOUNCE_MS = 20;
/** How long to wait for the monitor to subscribe before dumping anyway (then a change made in
 *  that instant could go unseen until the next one). */
const SUBSCRIBE_WAIT_MS = 1000;
const SUBSCRIBE_POLL_MS = 2;

export interface RouteWatch {
  /** Resolves once the first list was delivered; rejects if it could not be read. */
  ready: Promise<void>;
  /** Stops watching and kills the `ip` processes it started. No callback after this. */
  close(): void;
}

/**
 * Calls onChange with the full list of IPv4 and IPv6 routes via `ifname` in the main table: once
 * at the start, then whenever the list changed. Runs in the caller's network namespace.
 */
export function watchSystemRoutes(
  ifname: string,
  onChange: (routes: SystemRoute[]) => void,
  onError: (e: Error) => void = () => {},
): RouteWatch {
  const children = new Set<ChildProcess>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let dumping = false;
  let dirty = false;
  let last: string | undefined;
  let settle: { resolve(): void; reject(e: Error): void } | undefined;
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ready.catch(() => {}); // reported through onError too; a caller need not await ready

  const fail = (error: Error) => {
    if (closed) return;
    settle?.reject(error);
    settle = undefined;
    onError(error);
  };

  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile('ip', args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
        children.delete(child);
        if (error) reject(new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
        else resolve(stdout);
      });
      children.add(child);
    });

  const dump = async () => {
    dumping = true;
    dirty = false;
    try {
      // Both at once; if both fail, the IPv4 error is the one reported, whichever came first.
      const [v4, v6] = await Promise.allSettled([
        run(['-j', 'route', 'show', 'dev', ifname]),
        run(['-j', '-6', 'route', 'show', 'dev', ifname]),
      ]);
      if (closed) return;
      if (v4.status === 'rejected') throw v4.reason;
      if (v6.status === 'rejected') throw v6.reason;
      const routes = [...parseRoutes(v4.value, 4), ...parseRoutes(v6.value, 6)];
      const text = JSON.stringify(routes, (_, v: unknown) => (v instanceof Uint8Array ? [...v] : v));
      if (text !== last) {
        last = text;
        onChange(routes);
      }
      settle?.resolve();
      settle = undefined;
    } catch (error) {
      fail(error as Error);
    } finally {
      dumping = false;
      if (dirty && !closed) schedule();
    }
  };

  const schedule = () => {
    if (closed) return;
    if (dumping) dirty = true;
    else
      timer ??= setTimeout(() => {
        timer = undefined;
        void dump();
      }, DEBOUNCE_MS);
  };

  const monitor = spawn('ip', ['monitor', 'route'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(monitor);
  monitor.stdout.on('data', schedule);
  let monitorErr = '';
  monitor.stderr.on('data', (d: Buffer) => (monitorErr += d.toString()));
  monitor.on('error', (e: NodeJS.ErrnoException) => {
    fail(new Error(e.code === 'ENOENT' ? 'cannot run ip: install iproute2' : `ip monitor route: ${e.message}`));
  });
  monitor.on('exit', (code, signal) => {
    children.delete(monitor);
    fail(new Error(`ip monitor route exited (${code ?? signal}) ${monitorErr.trim()}`.trim()));
  });
  void subscribed(monitor, () => closed).then(() => {
    if (!closed) return dump();
  });

  return {
    ready,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      for (const child of children) child.kill('SIGKILL');
      children.clear();
      settle?.resolve();
    },
  };
}

/** Resolves once the monitor's netlink socket has joined multicast groups, or after a bound. */
async function subscribed(monitor: ChildProcess, gaveUp: () => boolean): Promise<void> {
  const deadline = performance.now() + SUBSCRIBE_WAIT_MS;
  while (!gaveUp() && monitor.pid !== undefined && monitor.exitCode === null && performance.now() < deadline) {
    if (await hasRouteSubscription(monitor.pid)) return;
    await new Promise((resolve) => setTimeout(resolve, SUBSCRIBE_POLL_MS));
  }
}

async function hasRouteSubscription(pid: number): Promise<boolean> {
  let table: string;
  try {
    table = await readFile('/proc/net/netlink', 'utf8');
  } catch {
    return true; // cannot tell; do not hold the dump back
  }
  // Columns: sk Eth Pid Groups ...; Eth 0 is NETLINK_ROUTE.
  return table.split('\n').some((line) => {
    const [, eth, portId, groups] = line.trim().split(/\s+/);
    return eth === '0' && portId === String(pid) && groups !== undefined && /[1-9a-f]/i.test(groups);
  });
}

interface IpRouteJson {
  type?: string;
  dst?: string;
  gateway?: string;
  via?: { family?: string; host?: string };
  nexthops?: unknown;
  metric?: number;
}

/**
 * Unicast routes of one `ip -j route show` output, lowest metric first (so the router, which
 * keeps the first of equal prefixes, picks the one the kernel would). Skipped: other route types
 * (local, broadcast, multicast, blackhole...), which never carry a packet to a peer, and
 * multipath routes, whose next hop the kernel picks per flow.
 */
export function parseRoutes(json: string, family: 4 | 6): SystemRoute[] {
  const entries = (json.trim() === '' ? [] : JSON.parse(json)) as IpRouteJson[];
  const routes: (SystemRoute & { metric: number })[] = [];
  for (const entry of entries) {
    if ((entry.type !== undefined && entry.type !== 'unicast') || entry.nexthops !== undefined) continue;
    const dst = routeDestination(entry.dst, family);
    if (dst === null) continue;
    const via = entry.gateway ?? entry.via?.host;
    const gateway = via === undefined ? null : (parseIp(via)?.bytes ?? null);
    if (via !== undefined && gateway === null) continue;
    routes.push({ family, ...dst, gateway, metric: entry.metric ?? 0 });
  }
  return routes.sort((a, b) => a.metric - b.metric).map(({ metric: _, ...route }) => route);
}

/** A route's `dst` as iproute2 prints it: a prefix, a bare address, or `default`. */
function routeDestination(text: string | undefined, family: 4 | 6): { dst: Uint8Array; prefixLen: number } | null {
  if (text === 'default') return { dst: new Uint8Array(family === 4 ? 4 : 16), prefixLen: 0 };
  const prefix = text === undefined ? null : parsePrefix(text);
  if (prefix === null || prefix.family !== family) return null;
  return { dst: prefix.bytes, prefixLen: prefix.prefixLen };
}
