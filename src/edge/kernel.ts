/**
 * The real edges: a TUN device and UDP sockets through the native shim, the kernel's routes
 * through iproute2, and the process's monotonic clock.
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { TUN_OFFLOADS } from '../core/gso.js';
import type { Clock, DatagramBind, Edges, OpenedTun, TunConfig } from './edges.js';
import { watchSystemRoutes } from './system-routes.js';
import { TunDevice } from './tun.js';
import { UdpBind } from './udp.js';

export const realClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return { cancel: () => clearInterval(timer) };
  },
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};

export const kernelEdges: Edges = {
  openTun,
  openUdp,
  watchRoutes: (ifname, onChange, onError) => watchSystemRoutes(ifname, onChange, onError),
  clock: realClock,
};

function openTun(config: TunConfig): OpenedTun {
  const tun = TunDevice.open(config.name, config.offload ? TUN_OFFLOADS : undefined);
  const warnings: string[] = [];
  if (tun.offloadError !== null) warnings.push(`TUN offloads refused, running without: ${tun.offloadError}`);
  try {
    tun.mtu = config.mtu;
    tun.txqueuelen = config.txqueuelen;
    if (tun.offloads !== null) {
      const problem = limitSuperPackets(tun.name, config.gsoMaxSize);
      if (problem !== null) warnings.push(problem);
    }
    tun.up();
  } catch (error) {
    tun.close();
    throw error;
  }
  return { tun, warnings };
}

/**
 * Caps the TUN's super-packets (netlink IFLA_GSO_MAX_SIZE; no ioctl exists, so through ip).
 * Returns why it failed, or null: the interface works either way, with longer queues.
 */
function limitSuperPackets(name: string, bytes: number): string | null {
  try {
    execFileSync('ip', ['link', 'set', 'dev', name, 'gso_max_size', String(bytes)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return null;
  } catch (error) {
    const why = (error as Error).message.split('\n')[0];
    return `cannot set gso_max_size ${bytes} on ${name} (${why}): super-packets stay at 64 KiB`;
  }
}

/**
 * Binds the wildcard address, dual-stack when the kernel has IPv6, so that one socket serves
 * IPv4 and IPv6 peers alike.
 */
function openUdp(port: number): DatagramBind {
  try {
    return UdpBind.open({ family: 6, address: '::', port });
  } catch (error) {
    if ((error as { code?: string }).code !== 'EAFNOSUPPORT') throw error;
    return UdpBind.open({ family: 4, address: '0.0.0.0', port });
  }
}
