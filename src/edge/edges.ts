/**
 * What an interface needs of the operating system, as small interfaces in the shape of
 * wireguard-go's tun.Device and conn.Bind: a TUN device and datagram sockets read and written in
 * batches with headroom, the kernel's routes through the TUN, and a clock. `kernelEdges` gives
 * the real ones (edge/kernel.ts); `MemoryNetwork` (edge/memory.ts) gives in-memory ones, so two
 * interfaces can run joined in one process without root.
 */
import { getSystemErrorName } from 'node:util';
import type { PacketBatch } from '../core/batch.js';
import type { SystemRoute } from '../core/ip.js';

/** Error code that Tun.read()/write() throw with once the device was deleted underneath us. */
export const TUN_GONE_CODE = 'EBADFD';

/** The errno name an edge's error carries ('EIO', 'EBADFD', ...), or undefined. */
/**
 * The error a packet stands for when a batch call refused it alone (sizes[i] = -errno), so the
 * once-only warnings can name it as they name a thrown one: code 'EIO', 'ENETDOWN', ...
 */
export function packetError(negativeErrno: number): Error & { code: string } {
  const code = getSystemErrorName(negativeErrno);
  return Object.assign(new Error(code), { code });
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Watching an fd (or a fake's queue): level-triggered, `status < 0` when watching failed. */
export type OnReadable = (status: number) => void;

export interface Tun {
  /** Interface name as the kernel assigned it. */
  readonly name: string;
  readonly ifindex: number;
  /**
   * TUN_F_* offloads the device accepted, or null without IFF_VNET_HDR. When not null, every
   * packet read or written starts with a virtio_net_hdr (core/gso.ts).
   */
  readonly offloads: number | null;
  /** Whether writes may carry UDP super-packets (virtio_net_hdr gso_type UDP_L4). */
  readonly usoWrite: boolean;
  readonly mtu: number;
  /**
   * Reads up to `max` packets, packet i at batch.offsets[i] (set by the caller); sets sizes and
   * count, returns count (0: nothing pending). Throws code TUN_GONE_CODE once the device is gone.
   */
  read(batch: PacketBatch, max?: number): number;
  /**
   * Writes packets 0..count-1; returns how many were consumed from the front (written, or
   * refused one by one with sizes[i] = -errno). Less than count: the queue is full.
   */
  write(batch: PacketBatch): number;
  /** Replaces any previous callback. */
  onReadable(cb: OnReadable): void;
  close(): void;
}

export interface TunConfig {
  name: string;
  mtu: number;
  /** Packets the kernel may hold for us to read. */
  txqueuelen: number;
  /** Ask for IFF_VNET_HDR with checksum and TSO offloads; fall back to a plain TUN if refused. */
  offload: boolean;
  /** With offloads, the largest super-packet the kernel may hand us. */
  gsoMaxSize: number;
}

export interface OpenedTun {
  tun: Tun;
  /** What was asked for and refused; the device works without it. */
  warnings: string[];
}

/** One UDP socket, in the shape of conn.Bind: batches of packets, each with its endpoint slot. */
export interface DatagramBind {
  readonly port: number;
  readonly closed: boolean;
  /**
   * Receives up to `max` datagrams into the batch and their endpoints into the slots (endpoint
   * i for packet i, core/endpoint.ts); sizes[i] is -1 for a truncated one. Returns count, 0 when
   * drained. After a call that filled all `max` slots, call again before waiting: datagrams
   * already taken from the kernel (UDP GRO) do not make the socket readable again.
   */
  recv(batch: PacketBatch, endpoints: Buffer, max?: number): number;
  /** Sends packet i to endpoint slot i; returns packets consumed from the front, as Tun.write. */
  send(batch: PacketBatch, endpoints: Buffer): number;
  onReadable(cb: OnReadable): void;
  close(): void;
}

export interface RouteWatch {
  /** Stops watching; no callback after this. */
  close(): void;
}

/** Calls onChange with every route through `ifname`, at the start and after each change. */
export type WatchRoutes = (
  ifname: string,
  onChange: (routes: SystemRoute[]) => void,
  onError: (error: Error) => void,
) => RouteWatch;

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls fn every `ms` until cancelled. */
  every(ms: number, fn: () => void): Timer;
  /** Calls fn once, `ms` from now, unless cancelled. */
  after(ms: number, fn: () => void): Timer;
}

export interface Edges {
  /** Creates the device, configured and up; throws code 'EBUSY' when the name is taken. */
  openTun(config: TunConfig): OpenedTun;
  /** Binds a UDP port on every local address (0: any free port). */
  openUdp(port: number): DatagramBind;
  watchRoutes: WatchRoutes;
  clock: Clock;
}
