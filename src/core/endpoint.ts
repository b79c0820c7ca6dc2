/**
 * Endpoints: where a packet came from and which local address it reached, in a fixed 48-byte
 * binary slot per packet instead of a JS object, so the hot path neither allocates nor formats
 * address strings. This module is the only TypeScript that knows the layout; the native shim
 * (native/ovpn_io.c) fills and reads the same slots for recvmmsg/sendmmsg.
 *
 *   [0]      remote family: 4 | 6 (0: no remote yet)
 *   [1]      reserved (0)
 *   [2..3]   remote port, big-endian
 *   [4..19]  remote address (first 4 bytes for IPv4)
 *   [20]     local family: 0 (unknown: let the kernel choose) | 4 | 6
 *   [21..23] reserved (0)
 *   [24..39] local address the packet arrived on (first 4 bytes for IPv4)
 *   [40..43] ifindex it arrived on, little-endian uint32
 *   [44..47] reserved (0)
 *
 * Sending with a slot whose local family is set pins the source address ("sticky source"), so
 * replies leave from the address the peer talked to on multi-homed hosts.
 */
import { formatIp, parseSocketAddress } from './ip.js';

export const ENDPOINT_SIZE = 48;
const FAMILY = 0;
const PORT = 2;
const ADDRESS = 4;
const LOCAL_FAMILY = 20;
const LOCAL_ADDRESS = 24;
const IFINDEX = 40;
/** Family, port and address: who the remote side is. */
const REMOTE_BYTES = LOCAL_FAMILY;
/** Remote and local side with the ifindex: the whole path a packet took. */
const PATH_BYTES = IFINDEX + 4;

/** An endpoint decoded into strings: for the control plane and events, never per packet. */
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
  /** Only used for link-local IPv6 addresses. */
  ifindex?: number;
}

/** Room for n endpoint slots. */
export function newEndpoints(n: number): Buffer {
  return Buffer.alloc(n * ENDPOINT_SIZE);
}

/** Fills slot `slot`; IPv4-mapped IPv6 addresses are stored as IPv4, zone ids are dropped. */
export function writeEndpoint(buf: Buffer, slot: number, ep: EndpointInit): void {
  const o = slot * ENDPOINT_SIZE;
  if (o + ENDPOINT_SIZE > buf.length) throw new RangeError(`endpoint slot ${slot} outside buffer`);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) throw new RangeError(`bad port ${ep.port}`);
  buf.fill(0, o, o + ENDPOINT_SIZE);
  buf[o + FAMILY] = writeAddress(buf, o + ADDRESS, ep.address);
  buf.writeUInt16BE(ep.port, o + PORT);
  if (ep.local !== undefined) buf[o + LOCAL_FAMILY] = writeAddress(buf, o + LOCAL_ADDRESS, ep.local);
  buf.writeUInt32LE(ep.ifindex ?? 0, o + IFINDEX);
}

function writeAddress(buf: Buffer, at: number, text: string): 4 | 6 {
  const ip = parseSocketAddress(text);
  if (ip === null) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  buf.set(ip.bytes, at);
  return ip.family;
}

/** Whether slot `slot` holds a remote address (a TCP peer waiting for its connection has none). */
export function hasRemote(buf: Buffer, slot: number): boolean {
  const family = buf[slot * ENDPOINT_SIZE + FAMILY];
  return family === 4 || family === 6;
}

/** Decodes a slot into strings. Allocates: for control paths, not per packet. */
export function readEndpoint(buf: Buffer, slot: number): Endpoint {
  const o = slot * ENDPOINT_SIZE;
  const family = buf[o + FAMILY];
  if (family !== 4 && family !== 6) throw new TypeError(`endpoint slot ${slot}: bad family ${family}`);
  const ep: Endpoint = {
    address: readAddress(buf, o + ADDRESS, family),
    port: buf.readUInt16BE(o + PORT),
    family,
    ifindex: buf.readUInt32LE(o + IFINDEX),
  };
  const localFamily = buf[o + LOCAL_FAMILY];
  if (localFamily === 4 || localFamily === 6) ep.local = readAddress(buf, o + LOCAL_ADDRESS, localFamily);
  return ep;
}

function readAddress(buf: Buffer, at: number, family: 4 | 6): string {
  return formatIp(buf.subarray(at, at + (family === 4 ? 4 : 16)));
}

/**
 * The remote side of slot `slot` as a string key (family, port and address), for maps of peers
 * by where they are; with `withPort` false, the remote host only. Allocates: not per packet.
 */
export function remoteKey(buf: Buffer, slot: number, withPort = true): string {
  const o = slot * ENDPOINT_SIZE;
  const family = buf[o + FAMILY]!;
  return withPort
    ? buf.toString('latin1', o, o + REMOTE_BYTES)
    : family + buf.toString('latin1', o + ADDRESS, o + REMOTE_BYTES);
}

/** Same remote side (family, port, address)? The local side is ignored. No allocation. */
export function sameRemote(a: Buffer, ai: number, b: Buffer, bi: number): boolean {
  return compareSlots(a, ai, b, bi, 0, REMOTE_BYTES);
}

/** Same remote address, whatever the port: the host a control packet came from. */
export function sameRemoteAddress(a: Buffer, ai: number, b: Buffer, bi: number): boolean {
  return a[ai * ENDPOINT_SIZE] === b[bi * ENDPOINT_SIZE] && compareSlots(a, ai, b, bi, ADDRESS, REMOTE_BYTES);
}

/** Same path: remote side, local address and interface. */
export function samePath(a: Buffer, ai: number, b: Buffer, bi: number): boolean {
  return compareSlots(a, ai, b, bi, 0, PATH_BYTES);
}

/**
 * A byte loop, not Buffer.compare: every received packet compares its path with its peer's, and
 * for these few dozen bytes the call into Node's compare costs more than the loop.
 */
function compareSlots(a: Buffer, ai: number, b: Buffer, bi: number, from: number, to: number): boolean {
  const x = ai * ENDPOINT_SIZE;
  const y = bi * ENDPOINT_SIZE;
  for (let i = from; i < to; i++) if (a[x + i] !== b[y + i]) return false;
  return true;
}

/** Copies slot si of src into slot di of dst (e.g. to remember a peer's endpoint). */
export function copyEndpoint(dst: Buffer, di: number, src: Buffer, si: number): void {
  src.copy(dst, di * ENDPOINT_SIZE, si * ENDPOINT_SIZE, (si + 1) * ENDPOINT_SIZE);
}

const PROTO_TCP = 6;
const PROTO_UDP = 17;

/**
 * Whether an IP packet read from the TUN is one of our own outer packets to the remote side of
 * slot `slot`: UDP or TCP to that address and port. It gets there when a route sends the peer's
 * own address into the tunnel; sealed and sent again, it would come back for ever. No allocation.
 */
export function isOuterPacketTo(buf: Buffer, slot: number, packet: Buffer, offset: number, size: number): boolean {
  const o = slot * ENDPOINT_SIZE;
  const family = buf[o + FAMILY];
  const version = size > 0 ? packet[offset]! >> 4 : 0;
  let proto: number;
  let addressAt: number;
  let portAt: number;
  if (version === 4 && family === 4 && size >= 20) {
    proto = packet[offset + 9]!;
    addressAt = offset + 16;
    portAt = offset + (packet[offset]! & 0x0f) * 4 + 2;
  } else if (version === 6 && family === 6 && size >= 40) {
    proto = packet[offset + 6]!;
    addressAt = offset + 24;
    portAt = offset + 42;
  } else {
    return false;
  }
  if ((proto !== PROTO_UDP && proto !== PROTO_TCP) || portAt + 2 > offset + size) return false;
  if (packet[portAt] !== buf[o + PORT] || packet[portAt + 1] !== buf[o + PORT + 1]) return false;
  const length = family === 4 ? 4 : 16;
  return packet.compare(buf, o + ADDRESS, o + ADDRESS + length, addressAt, addressAt + length) === 0;
}
