/**
 * UDP edge: one socket read and written with recvmmsg/sendmmsg, carrying a
 * fixed-size binary endpoint per packet instead of a JS object, so the hot
 * path neither allocates nor formats address strings.
 *
 * Endpoint slot layout (ENDPOINT_SIZE = 48 bytes, slot i at i*48):
 *   [0]      remote family: 4 | 6 (IPv4-mapped sources are reported as 4)
 *   [1]      reserved (0)
 *   [2..3]   remote port, big-endian
 *   [4..19]  remote address (first 4 bytes for IPv4)
 *   [20]     local family: 0 (unknown / let the kernel choose) | 4 | 6
 *   [21..23] reserved (0)
 *   [24..39] local address the packet arrived on (first 4 bytes for IPv4)
 *   [40..43] ifindex it arrived on, little-endian uint32
 *   [44..47] reserved (0)
 * Sending with a slot whose local family is set pins the source address
 * ("sticky source"), so replies leave from the address the peer talked to on
 * multi-homed hosts. If that address no longer exists the packet is sent with
 * a kernel-chosen source and the slot's local part is cleared.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { PacketBatch } from '../core/batch.js';
import { envInteger, envSwitch } from './env.js';
import { native, type UdpOffloadInfo } from './native.js';
import { PolledFd } from './polled-fd.js';

export const ENDPOINT_SIZE = 48;
const F = 0,
  PORT = 2,
  ADDR = 4,
  LF = 20,
  LADDR = 24,
  IFX = 40;

export interface Endpoint {
  address: string;
  port: number;
  family: 4 | 6;
  /** Local address the packet was received on / should be sent from. */
  local?: string;
  ifindex: number;
}

export interface EndpointInit {
  address: string;
  port: number;
  local?: string;
  /** Only used for link-local IPv6 sources. */
  ifindex?: number;
}

/** Allocate room for n endpoint slots. */
export function newEndpoints(n: number): Buffer {
  return Buffer.alloc(n * ENDPOINT_SIZE);
}

function parseV4(s: string, out: Buffer, at: number): void {
  const parts = s.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

/** Parse an IP literal into 4 or 16 bytes at out[at]; returns the family. IPv4-mapped IPv6 becomes 4. */
function parseIp(s: string, out: Buffer, at: number): 4 | 6 {
  const pct = s.indexOf('%'); // zone ids travel separately (ifindex)
  if (pct >= 0) s = s.slice(0, pct);
  if (isIPv4(s)) {
    parseV4(s, out, at);
    return 4;
  }
  if (!isIPv6(s)) throw new TypeError(`not an IP address: ${JSON.stringify(s)}`);
  const words: number[] = [];
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const toWords = (part: string): number[] => {
    const w: number[] = [];
    if (part === '') return w;
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const b = Buffer.alloc(4);
        parseV4(g, b, 0);
        w.push(b.readUInt16BE(0), b.readUInt16BE(2));
      } else w.push(parseInt(g, 16));
    }
    return w;
  };
  const h = toWords(head);
  if (tail === undefined) words.push(...h);
  else {
    const t = toWords(tail);
    words.push(...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t);
  }
  const b = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) b.writeUInt16BE(words[i]!, i * 2);
  if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt32BE(8) === 0xffff) {
    b.copy(out, at, 12, 16);
    return 4;
  }
  b.copy(out, at);
  return 6;
}

function formatIp(buf: Buffer, at: number, family: number): string {
  if (family === 4) return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(buf.readUInt16BE(at + i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first on ties
  let best = -1,
    bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export function writeEndpoint(buf: Buffer, slot: number, ep: EndpointInit): void {
  const o = slot * ENDPOINT_SIZE;
  if (o + ENDPOINT_SIZE > buf.length) throw new RangeError(`endpoint slot ${slot} outside buffer`);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) throw new RangeError(`bad port ${ep.port}`);
  buf.fill(0, o, o + ENDPOINT_SIZE);
  buf[o + F] = parseIp(ep.address, buf, o + ADDR);
  buf.writeUInt16BE(ep.port, o + PORT);
  if (ep.local !== undefined) buf[o + LF] = parseIp(ep.local, buf, o + LADDR);
  buf.writeUInt32LE(ep.ifindex ?? 0, o + IFX);
}

/** Decode a slot into strings. Allocates: for control paths, not per packet. */
export function readEndpoint(buf: Buffer, slot: number): Endpoint {
  const o = slot * ENDPOINT_SIZE;
  const family = buf[o + F];
  if (family !== 4 && family !== 6) throw new TypeError(`endpoint slot ${slot}: bad family ${family}`);
  const ep: Endpoint = {
    address: formatIp(buf, o + ADDR, family),
    port: buf.readUInt16BE(o + PORT),
    family,
    ifindex: buf.readUInt32LE(o + IFX),
  };
  const lf = buf[o + LF];
  if (lf === 4 || lf === 6) ep.local = formatIp(buf, o + LADDR, lf);
  return ep;
}

/** Same remote peer (family, port, address)? Ignores the local part; no allocation. */
export function endpointEquals(a: Buffer, ai: number, b: Buffer, bi: number): boolean {
  const x = ai * ENDPOINT_SIZE,
    y = bi * ENDPOINT_SIZE;
  const fam = a[x + F];
  if (fam !== b[y + F] || a[x + PORT] !== b[y + PORT] || a[x + PORT + 1] !== b[y + PORT + 1]) return false;
  const len = fam === 4 ? 4 : 16;
  for (let i = 0; i < len; i++) if (a[x + ADDR + i] !== b[y + ADDR + i]) return false;
  return true;
}

/** Copy slot si of src into slot di of dst (e.g. to remember a peer's endpoint). */
export function copyEndpoint(dst: Buffer, di: number, src: Buffer, si: number): void {
  src.copy(dst, di * ENDPOINT_SIZE, si * ENDPOINT_SIZE, (si + 1) * ENDPOINT_SIZE);
}

export interface UdpBindOptions {
  family: 4 | 6;
  /** "" or "0.0.0.0" / "::" for any; "::" is dual-stack. */
  address: string;
  /** 0 for an ephemeral port. */
  port: number;
  /**
   * UDP GSO on send / GRO on receive, when the kernel has them. Default on; the environment
   * variables OVPN_UDP_GSO=0 and OVPN_UDP_GRO=0 turn them off for every socket (to compare).
   */
  gso?: boolean;
  gro?: boolean;
  /**
   * Socket receive / send buffer in bytes (0: the kernel's default). The receive buffer is
   * the queue a TCP flow inside the tunnel fills when we are the slower stage: no loss until it
   * is full, so every byte of it is delay for everything else (a 4 MiB buffer gave 10-20 ms
   * ping under load). Default OVPN_UDP_RCVBUF / OVPN_UDP_SNDBUF, else DEFAULT_RCVBUF/SNDBUF.
   */
  rcvbuf?: number;
  sndbuf?: number;
}

/** Room for a couple of 128-datagram bursts, little more (see UdpBindOptions.rcvbuf). */
export const DEFAULT_RCVBUF = 256 * 1024;
/** Sends go straight to the device: a large send buffer only holds a full batch in flight. */
export const DEFAULT_SNDBUF = 1024 * 1024;

export class UdpBind extends PolledFd {
  private constructor(
    fd: number,
    readonly family: 4 | 6,
    readonly address: string,
    readonly port: number,
    /** Whether sends use UDP GSO and receives UDP GRO (wanted and accepted by the kernel). */
    readonly gso: boolean,
    readonly gro: boolean,
  ) {
    super(fd, 'udp bind');
  }

  static open(opts: UdpBindOptions): UdpBind {
    const gso = opts.gso ?? envSwitch('OVPN_UDP_GSO', true);
    const gro = opts.gro ?? envSwitch('OVPN_UDP_GRO', true);
    const rcvbuf = opts.rcvbuf ?? envInteger('OVPN_UDP_RCVBUF', DEFAULT_RCVBUF);
    const sndbuf = opts.sndbuf ?? envInteger('OVPN_UDP_SNDBUF', DEFAULT_SNDBUF);
    const s = native().udpOpen(opts.family, opts.address, opts.port, { gso, gro, rcvbuf, sndbuf });
    return new UdpBind(s.fd, opts.family, opts.address, s.port, s.gso, s.gro);
  }

  /** Offload state and counters (GSO may have been turned off since open, see UdpOffloadInfo). */
  offloads(): UdpOffloadInfo {
    return native().udpInfo(this.checkFd());
  }

  /**
   * Receive up to batch.bufs.length datagrams: packet i at batch.offsets[i],
   * its length in sizes[i] (-1 if truncated: drop it), its endpoints in slot i.
   * Sets and returns batch.count; 0 means nothing pending.
   *
   * With GRO one datagram from the kernel can hold many packets; those that did not fit wait
   * inside the shim, invisible to the poller. They only exist after a call that filled all
   * `max` slots, so: after a full batch, call again before waiting for readability.
   */
  recv(batch: PacketBatch, endpoints: Buffer, max: number = batch.bufs.length): number {
    const n = native().udpRecvBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, endpoints, max);
    batch.count = n;
    return n;
  }

  /**
   * Send packets 0..batch.count-1, packet i to endpoint slot i. Returns how
   * many were consumed from the front: sent, or dropped for a reason specific
   * to that packet (then sizes[i] = -errno, e.g. -ENETUNREACH). A return below
   * count means the socket buffer is full (EAGAIN/ENOBUFS).
   *
   * With GSO, runs of packets for the same slot and of the same size (the last may be
   * shorter) go out as one message that the kernel segments; this changes nothing here.
   */
  send(batch: PacketBatch, endpoints: Buffer): number {
    return native().udpSendBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, endpoints, batch.count);
  }
}
