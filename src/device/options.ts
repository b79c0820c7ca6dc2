/**
 * InterfaceOptions resolved into settings: what the caller gave, else the environment switch,
 * else the default. Checked here, before anything is created.
 */
import { type AeadBackend, CRYPTO_BACKENDS, type CryptoBackendName } from '../core/aead.js';
import { MAX_BATCH } from '../core/batch.js';
import { DEFAULT_FLOW_QUEUE, type FlowQueueOptions, flowQueueProblem } from '../core/flow-queue.js';
import { aeadBackend } from '../edge/aead.js';
import type { Edges } from '../edge/edges.js';
import { envInteger, envSwitch } from '../edge/env.js';
import { kernelEdges } from '../edge/kernel.js';
import { type InterfaceMode, type InterfaceOptions, OvpnError } from './api.js';
import { type ControlQueueOptions, DEFAULT_CONTROL_QUEUE } from './control-queue.js';

/**
 * A full inner packet plus our 72 bytes (IPv6 40, UDP 8, DATA_V2 header, packet-id and tag 24)
 * fits a 1500-byte link, so outer packets never fragment. Same as ovpn-dco.
 */
export const DEFAULT_MTU = 1428;

/** OpenVPN 2.6's --txqueuelen default on Linux (the kernel's default for a TUN is 500). */
export const DEFAULT_TXQUEUELEN = 100;

/**
 * With offloads, the largest super-packet the kernel hands the TUN (the kernel's own maximum).
 * It was 16 KiB while a slot of the TUN's ring holding 64 KiB meant milliseconds of delay
 * (bench/results/tun-offload.md); since the flow queue drains the ring at every wakeup and the
 * data path got faster, whole super-packets mean fewer reads and wakeups per byte for the same
 * ping under load (docs/ARCHITECTURE.md, "TUN queue and offloads").
 */
export const DEFAULT_GSO_MAX_SIZE = 65536;

export interface InterfaceSettings {
  name: string;
  mode: InterfaceMode;
  mtu: number;
  followSystemRoutes: boolean;
  txqueuelen: number;
  offload: boolean;
  gsoMaxSize: number;
  gro: boolean;
  udpGro: boolean;
  flowQueue: FlowQueueOptions;
  batchSize: number;
  controlQueue: ControlQueueOptions;
  crypto: CryptoBackendName;
  aead: AeadBackend;
  edges: Edges;
}

export function resolveOptions(options: InterfaceOptions): InterfaceSettings {
  const mode = options.mode ?? 'P2P';
  if (mode !== 'P2P' && mode !== 'MP')
    throw new OvpnError('EINVAL', `mode must be P2P or MP, got ${String(mode)}`, 'mode');
  checkInterfaceName(options.name);
  const flowQueue = flowQueueOptions(options.flowQueue);
  const queueProblem = flowQueueProblem(flowQueue);
  if (queueProblem !== null) {
    const env = 'OVPN_TX_QUEUE_SLOTS, OVPN_TX_QUEUE_BULK_BYTES, OVPN_CODEL_TARGET_US, OVPN_CODEL_INTERVAL_US';
    throw new OvpnError('EINVAL', `flowQueue: ${queueProblem} (or set ${env})`, 'flowQueue');
  }
  const batchSize = options.batchSize ?? envInteger('OVPN_DATA_PATH_BATCH', MAX_BATCH, 1, MAX_BATCH);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
    throw new OvpnError('EINVAL', `batchSize must be 1 to ${MAX_BATCH} packets, got ${batchSize}`, 'batchSize');
  }
  const crypto = options.crypto ?? (process.env.OVPN_CRYPTO || 'native');
  if (!(CRYPTO_BACKENDS as readonly string[]).includes(crypto)) {
    const got = JSON.stringify(crypto);
    throw new OvpnError(
      'EINVAL',
      `crypto must be ${CRYPTO_BACKENDS.join(' or ')} (or set OVPN_CRYPTO), got ${got}`,
      'crypto',
    );
  }
  return {
    name: options.name,
    mode,
    mtu: options.mtu ?? DEFAULT_MTU,
    followSystemRoutes: options.followSystemRoutes ?? true,
    txqueuelen: options.txqueuelen ?? envInteger('OVPN_TUN_TXQUEUELEN', DEFAULT_TXQUEUELEN),
    offload: options.offload ?? envSwitch('OVPN_TUN_OFFLOAD', true),
    gsoMaxSize: options.gsoMaxSize ?? envInteger('OVPN_TUN_GSO_MAX_SIZE', DEFAULT_GSO_MAX_SIZE),
    gro: options.gro ?? envSwitch('OVPN_TUN_GRO', true),
    udpGro: options.udpGro ?? envSwitch('OVPN_TUN_UDP_GRO', true),
    flowQueue,
    batchSize,
    controlQueue: controlQueueOptions(options.controlQueue),
    crypto: crypto as CryptoBackendName,
    aead: aeadBackend(crypto as CryptoBackendName),
    edges: options.edges ?? kernelEdges,
  };
}

/** Interface names become file names (control socket, log): checked before any path is built. */
export function checkInterfaceName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    const got = JSON.stringify(name);
    throw new OvpnError('EINVAL', `interface name must be 1-15 letters, digits, '_', '.' or '-', got ${got}`, 'ifname');
  }
  return name;
}

function controlQueueOptions(given: Partial<ControlQueueOptions> = {}): ControlQueueOptions {
  const options = { ...DEFAULT_CONTROL_QUEUE, ...given };
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new OvpnError(
        'EINVAL',
        `controlQueue.${name} must be a whole number above 0, got ${value}`,
        'controlQueue',
      );
    }
  }
  return options;
}

function flowQueueOptions(given: Partial<FlowQueueOptions> = {}): FlowQueueOptions {
  const d = DEFAULT_FLOW_QUEUE;
  const micros = (name: string, ms: number) => envInteger(name, ms * 1000, 1, 10_000_000) / 1000;
  return {
    slots: given.slots ?? envInteger('OVPN_TX_QUEUE_SLOTS', d.slots, 1, 65535),
    bulkBytes: given.bulkBytes ?? envInteger('OVPN_TX_QUEUE_BULK_BYTES', d.bulkBytes, 1, 2 ** 31 - 1),
    targetMs: given.targetMs ?? micros('OVPN_CODEL_TARGET_US', d.targetMs),
    intervalMs: given.intervalMs ?? micros('OVPN_CODEL_INTERVAL_US', d.intervalMs),
  };
}
