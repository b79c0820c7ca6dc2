/**
 * TCP segmentation (TSO) and coalescing (GRO) for a TUN opened with IFF_VNET_HDR, in pure
 * TypeScript: the native shim only opens the device and moves bytes.
 *
 * With offloads on, each packet read from or written to the TUN starts with a 10-byte
 * struct virtio_net_hdr (little-endian on the hosts we run on):
 *
 *   0 flags u8        NEEDS_CSUM: the checksum at csum_start+csum_offset holds only the
 *                     pseudo-header sum; whoever emits the packet completes it over
 *                     [csum_start, end)
 *   1 gso_type u8     NONE, TCPV4, TCPV6 (| ECN)
 *   2 hdr_len u16     IP + TCP header length (a hint; we compute our own)
 *   4 gso_size u16    payload bytes per segment (the MSS)
 *   6 csum_start u16  where the transport header starts
 *   8 csum_offset u16 where its checksum field is, from csum_start (16 for TCP)
 *
 * Transmit (TUN → peer): the kernel hands us one TCP "super-packet" of up to 64 KiB per read;
 * `segmentCount` and `writeSegment` cut it into MSS-sized IP packets with their own lengths,
 * IPv4 ids and header checksums, sequence numbers, flags and complete TCP checksums, exactly
 * what the kernel's own segmentation would have put on the wire. What goes into the tunnel is
 * always plain, complete IP packets: the peer may be OpenVPN.
 *
 * Receive (peer → TUN): `coalesceForTun` merges consecutive in-order segments of one TCP flow
 * in a batch into one super-packet with gso_type TCPV4/6 and NEEDS_CSUM, as the kernel's GRO
 * would, so the local TCP stack handles one packet instead of dozens. Where the kernel takes
 * them (6.2+), consecutive datagrams of one UDP flow with the same payload size (the last may
 * be shorter) become one UDP super-packet (gso_type UDP_L4), which the kernel cuts back into
 * the same datagrams behind one write. Each segment's checksum is verified before it is merged
 * (a merged packet's checksum is never checked again by the kernel); packets not merged get an
 * all-zero header and the kernel checks them as usual.
 */
import { compact, DROPPED, type PacketBatch } from './batch.js';
import { pseudoHeaderSum, sum16 } from './checksum.js';

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
export const GSO_UDP_L4 = 5;
export const GSO_ECN = 0x80;

/** TUNSETOFFLOAD flags (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
/** What we ask the kernel for: checksum and TCP segmentation offload, IPv4 and IPv6. */
export const TUN_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

const PROTO_TCP = 6;
const PROTO_UDP = 17;
const UDP_HEADER = 8;
/** Datagrams in one UDP super-packet at most (the kernel's UDP_MAX_SEGMENTS on older kernels). */
const UDP_MAX_SEGMENTS = 64;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;
/** Largest IP packet (IPv4 total length; we keep IPv6 to the same bound). */
const MAX_IP = 65535;

// ---- checksums ------------------------------------------------------------------------------

/** Recomputes the IPv4 header checksum of the packet at `ip`. */
function setIpv4Checksum(buf: Uint8Array, ip: number): void {
  const ihl = (buf[ip]! & 0x0f) * 4;
  buf[ip + 10] = 0;
  buf[ip + 11] = 0;
  const c = ~sum16(buf, ip, ip + ihl, 0) & 0xffff;
  buf[ip + 10] = c >>> 8;
  buf[ip + 11] = c & 0xff;
}

/** Whether the TCP or UDP checksum of the packet at ip (IP header ipLen bytes, size total) verifies. */
function transportChecksumValid(buf: Uint8Array, ip: number, ipLen: number, size: number, proto: number): boolean {
  const s = sum16(buf, ip + ipLen, ip + size, pseudoHeaderSum(buf, ip, proto, size - ipLen));
  return s === 0xffff;
}

function u16le(buf: Uint8Array, at: number): number {
  return buf[at]! | (buf[at + 1]! << 8);
}

function u16be(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

function put16be(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 8) & 0xff;
  buf[at + 1] = v & 0xff;
}

function put16le(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
}

function u32be(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

function put32be(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 24) & 0xff;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

// ---- transmit: one read from the TUN → plain IP packets --------------------------------------

/**
 * Completes a NEEDS_CSUM packet in place (header at `hdr`, `size` bytes including it): sums
 * from csum_start to the end, the pseudo-header part the kernel left in the field included,
 * and stores the result. Returns false when csum_start/csum_offset point outside the packet.
 */
export function completeChecksum(buf: Uint8Array, hdr: number, size: number): boolean {
  const ip = hdr + VNET_HDR_LEN;
  const len = size - VNET_HDR_LEN;
  const start = u16le(buf, hdr + 6);
  const field = start + u16le(buf, hdr + 8);
  if (field + 2 > len) return false;
  const c = ~sum16(buf, ip + start, ip + len, 0) & 0xffff;
  // A zero result is sent as 0xffff (the same value in ones' complement): for UDP, zero would mean "no checksum".
  put16be(buf, ip + field, c === 0 ? 0xffff : c);
  return true;
}

/**
 * How many IP packets the read at buf[hdr, hdr+size) (virtio_net_hdr, then the packet) makes:
 * 1 for a packet the kernel did not ask us to segment, the number of segments for a TCP
 * super-packet, 0 when it cannot be handled (malformed, or a GSO type we did not ask for).
 */
export function segmentCount(buf: Uint8Array, hdr: number, size: number): number {
  const len = size - VNET_HDR_LEN;
  if (len < 1) return 0;
  const raw = buf[hdr + 1]!;
  const type = raw & ~GSO_ECN;
  if (type === GSO_NONE) {
    // ECN is a flag on a TCP type: alone it names no segmentation, and the header's other
    // fields were never validated for it, so the read is refused rather than cut by them.
    return raw === GSO_NONE ? 1 : 0;
  }
  const ip = hdr + VNET_HDR_LEN;
  const version = buf[ip]! >>> 4;
  if (!(type === GSO_TCPV4 && version === 4) && !(type === GSO_TCPV6 && version === 6)) return 0;
  const tcp = u16le(buf, hdr + 6);
  const ipMin = version === 4 ? (buf[ip]! & 0x0f) * 4 : 40;
  if (tcp < ipMin || ipMin < 20 || tcp + 20 > len) return 0;
  const tcpLen = (buf[ip + tcp + 12]! >>> 4) * 4;
  if (tcpLen < 20 || tcp + tcpLen > len) return 0;
  const gso = u16le(buf, hdr + 4);
  if (gso < 1) return 0;
  const payload = len - tcp - tcpLen;
  return payload <= 0 ? 1 : Math.ceil(payload / gso);
}

/**
 * Writes segment k of the TCP super-packet at buf[hdr, hdr+size) (segmentCount > 1, or a GSO
 * packet with one segment) as a complete IP packet at dst[at]; returns its size. Headers are
 * copied from the super-packet, then: IPv4 total length, id (+k) and header checksum, or the
 * IPv6 payload length; the sequence number (+k*gso_size); FIN and PSH on the last segment
 * only, CWR on the first only; and the full TCP checksum over the pseudo-header.
 */
export function writeSegment(buf: Buffer, hdr: number, size: number, k: number, dst: Buffer, at: number): number {
  const ip = hdr + VNET_HDR_LEN;
  const len = size - VNET_HDR_LEN;
  const tcp = u16le(buf, hdr + 6);
  const headers = tcp + (buf[ip + tcp + 12]! >>> 4) * 4;
  const gso = u16le(buf, hdr + 4);
  const payload = len - headers;
  const first = k * gso;
  const segLen = Math.max(0, Math.min(gso, payload - first));
  const last = first + segLen >= payload;
  buf.copy(dst, at, ip, ip + headers);
  buf.copy(dst, at + headers, ip + headers + first, ip + headers + first + segLen);
  const total = headers + segLen;
  if (dst[at]! >>> 4 === 4) {
    put16be(dst, at + 2, total);
    put16be(dst, at + 4, (u16be(buf, ip + 4) + k) & 0xffff);
    setIpv4Checksum(dst, at);
  } else {
    put16be(dst, at + 4, total - 40);
  }
  const t = at + tcp;
  put32be(dst, t + 4, (u32be(buf, ip + tcp + 4) + first) >>> 0);
  let flags = dst[t + 13]!;
  if (!last) flags &= ~(TCP_FIN | TCP_PSH);
  if (k > 0) flags &= ~TCP_CWR;
  dst[t + 13] = flags;
  dst[t + 16] = 0;
  dst[t + 17] = 0;
  const c = ~sum16(dst, t, at + total, pseudoHeaderSum(dst, at, PROTO_TCP, total - tcp)) & 0xffff;
  put16be(dst, t + 16, c);
  return total;
}

// ---- receive: a batch of plain IP packets → what we write to the TUN -------------------------

/**
 * Bookkeeping for coalescing, allocated once per interface: one entry per packet that heads a
 * merged super-packet ("item"), in the order they appear in the batch.
 */
export class GroTable {
  readonly slot = new Int32Array(128);
  readonly nextSeq = new Float64Array(128);
  readonly gsoSize = new Int32Array(128);
  readonly segments = new Int32Array(128);
  readonly ipLen = new Int32Array(128);
  /** Transport header length: TCP's, or UDP_HEADER for a UDP item. */
  readonly tcpLen = new Int32Array(128);
  readonly proto = new Uint8Array(128);
  readonly open = new Uint8Array(128);
  count = 0;
}

/** How far back in the table a packet looks for its flow. */
const FLOW_LOOKBACK = 8;

/** Whether the packets at a and b belong to one flow: version, protocol, addresses, ports. */
function sameFlow(a: Buffer, ao: number, aIpLen: number, b: Buffer, bo: number, bIpLen: number): boolean {
  const v6 = a[ao]! >>> 4 === 6;
  if (v6 !== (b[bo]! >>> 4 === 6) || aIpLen !== bIpLen) return false;
  const proto = v6 ? 6 : 9;
  if (a[ao + proto] !== b[bo + proto]) return false;
  const s = v6 ? 8 : 12;
  const e = v6 ? 40 : 20;
  for (let i = s; i < e; i++) if (a[ao + i] !== b[bo + i]) return false;
  for (let i = 0; i < 4; i++) if (a[ao + aIpLen + i] !== b[bo + bIpLen + i]) return false;
  return true;
}

/**
 * Whether the headers of b allow appending it to a (same flow assumed): IP fields that must
 * not change (IPv4 TOS, DF, TTL, options; IPv6 traffic class, flow label, hop limit) and TCP
 * ack number, window and options equal, same header lengths.
 */
function headersMatch(a: Buffer, ao: number, b: Buffer, bo: number, ipLen: number, tcpLen: number): boolean {
  if (!ipHeadersMatch(a, ao, b, bo, ipLen)) return false;
  const at = ao + ipLen;
  const bt = bo + ipLen;
  if ((b[bt + 12]! >>> 4) * 4 !== tcpLen) return false;
  for (let i = 8; i < 12; i++) if (a[at + i] !== b[bt + i]) return false;
  if (a[at + 14] !== b[bt + 14] || a[at + 15] !== b[bt + 15]) return false;
  for (let i = 20; i < tcpLen; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/** IP fields that must not change within a super-packet. */
function ipHeadersMatch(a: Buffer, ao: number, b: Buffer, bo: number, ipLen: number): boolean {
  if (a[ao]! >>> 4 === 4) {
    if (a[ao + 1] !== b[bo + 1] || a[ao + 6] !== b[bo + 6] || a[ao + 8] !== b[bo + 8]) return false;
    for (let i = 20; i < ipLen; i++) if (a[ao + i] !== b[bo + i]) return false;
  } else {
    for (let i = 0; i < 4; i++) if (a[ao + i] !== b[bo + i]) return false;
    if (a[ao + 7] !== b[bo + 7]) return false;
  }
  return true;
}

/**
 * The IP header length of a packet of protocol `proto` whose IP header allows merging (-1
 * otherwise): IPv4 without fragmentation or IPv6 without extension headers, with lengths
 * consistent with `size`.
 */
function plainIpLen(buf: Buffer, o: number, size: number, proto: number): number {
  const version = buf[o]! >>> 4;
  if (version === 4) {
    const ipLen = (buf[o]! & 0x0f) * 4;
    if (ipLen < 20 || size < ipLen || buf[o + 9] !== proto || u16be(buf, o + 2) !== size) return -1;
    if ((buf[o + 6]! & 0x3f) !== 0 || buf[o + 7] !== 0) return -1; // MF or a fragment offset
    return ipLen;
  }
  if (version === 6 && size >= 40 && buf[o + 6] === proto && u16be(buf, o + 4) === size - 40) return 40;
  return -1;
}

/**
 * The IP header length of a UDP datagram that may be merged (-1 otherwise): a plain IP header,
 * a UDP length that is the packet's, some payload, and a checksum (an IPv4 datagram sent
 * without one is left as it is).
 */
function mergeableUdpIpLen(buf: Buffer, o: number, size: number): number {
  if (size < 29) return -1;
  const ipLen = plainIpLen(buf, o, size, PROTO_UDP);
  if (ipLen < 0 || size <= ipLen + UDP_HEADER || u16be(buf, o + ipLen + 4) !== size - ipLen) return -1;
  if (u16be(buf, o + ipLen + 6) === 0) return -1;
  return ipLen;
}

/**
 * The IP header length of a TCP packet that may be merged (-1 otherwise): IPv4 without
 * fragmentation or IPv6 without extension headers, lengths consistent with `size`, flags ACK
 * or ACK|PSH, and some payload.
 */
function mergeableIpLen(buf: Buffer, o: number, size: number): number {
  if (size < 40) return -1;
  const ipLen = plainIpLen(buf, o, size, PROTO_TCP);
  if (ipLen < 0 || size < ipLen + 20) return -1;
  const tcpLen = (buf[o + ipLen + 12]! >>> 4) * 4;
  if (tcpLen < 20 || size <= ipLen + tcpLen) return -1;
  const flags = buf[o + ipLen + 13]!;
  if (flags !== TCP_ACK && flags !== (TCP_ACK | TCP_PSH)) return -1;
  return ipLen;
}

/** Writes a virtio_net_hdr in front of packet i (moving the packet if the headroom is short). */
function prependHeader(
  batch: PacketBatch,
  i: number,
  flags: number,
  type: number,
  hdrLen: number,
  gso: number,
  start: number,
  offset: number,
): void {
  const buf = batch.bufs[i]!;
  let o = batch.offsets[i]!;
  if (o < VNET_HDR_LEN) {
    buf.copyWithin(VNET_HDR_LEN, o, o + batch.sizes[i]!);
    o = VNET_HDR_LEN;
  }
  const h = o - VNET_HDR_LEN;
  buf[h] = flags;
  buf[h + 1] = type;
  put16le(buf, h + 2, hdrLen);
  put16le(buf, h + 4, gso);
  put16le(buf, h + 6, start);
  put16le(buf, h + 8, offset);
  batch.offsets[i] = h;
  batch.sizes[i] = batch.sizes[i]! + VNET_HDR_LEN;
}

/**
 * Prepares a batch of plain IP packets for a TUN with virtio_net_hdr: with `gro`, merges runs
 * of in-order TCP segments of one flow into super-packets (NEEDS_CSUM, gso_type TCPV4/6,
 * gso_size the first segment's payload); with `udpGro` (only for a TUN that takes them), runs
 * of one UDP flow's datagrams of one payload size, the last possibly shorter, into UDP
 * super-packets (gso_type UDP_L4). Every other packet gets an all-zero header. Merged packets
 * are removed from the batch, keeping each flow's order. Returns the new count.
 */
export function coalesceForTun(batch: PacketBatch, table: GroTable, gro: boolean, udpGro = false): number {
  const { bufs, offsets, sizes } = batch;
  table.count = 0;
  if (gro || udpGro) {
    for (let i = 0; i < batch.count; i++) {
      const tcpIpLen = gro ? mergeableIpLen(bufs[i]!, offsets[i]!, sizes[i]!) : -1;
      if (tcpIpLen >= 0) {
        mergeTcp(batch, table, i, tcpIpLen);
        continue;
      }
      const udpIpLen = udpGro ? mergeableUdpIpLen(bufs[i]!, offsets[i]!, sizes[i]!) : -1;
      if (udpIpLen >= 0) mergeUdp(batch, table, i, udpIpLen);
      else closeFlowOf(batch, table, i);
    }
  }
  let item = 0;
  for (let i = 0; i < batch.count; i++) {
    if (sizes[i] === DROPPED) continue;
    while (item < table.count && table.slot[item]! < i) item++;
    if (item < table.count && table.slot[item] === i && table.segments[item]! > 1) {
      finishSuperPacket(batch, table, item);
    } else {
      prependHeader(batch, i, 0, GSO_NONE, 0, 0, 0, 0);
    }
  }
  return compact(batch);
}

/** Appends TCP segment i to its flow's open item, or opens a new item with it. */
function mergeTcp(batch: PacketBatch, table: GroTable, i: number, ipLen: number): void {
  const buf = batch.bufs[i]!;
  const o = batch.offsets[i]!;
  const tcpLen = (buf[o + ipLen + 12]! >>> 4) * 4;
  const payload = batch.sizes[i]! - ipLen - tcpLen;
  const seq = u32be(buf, o + ipLen + 4);
  const psh = (buf[o + ipLen + 13]! & TCP_PSH) !== 0;
  const item = findFlow(batch, table, buf, o, ipLen);
  if (item >= 0 && table.open[item] === 1 && tryAppend(batch, table, item, i, ipLen, tcpLen, payload, seq, psh)) {
    batch.sizes[i] = DROPPED;
    return;
  }
  if (item >= 0) table.open[item] = 0;
  const n = newItem(table, i, ipLen, tcpLen, PROTO_TCP, payload);
  table.nextSeq[n] = (seq + payload) % 0x100000000;
  table.open[n] = psh ? 0 : 1;
}

/** Appends UDP datagram i to its flow's open item, or opens a new item with it. */
function mergeUdp(batch: PacketBatch, table: GroTable, i: number, ipLen: number): void {
  const buf = batch.bufs[i]!;
  const o = batch.offsets[i]!;
  const payload = batch.sizes[i]! - ipLen - UDP_HEADER;
  const item = findFlow(batch, table, buf, o, ipLen);
  if (item >= 0 && table.open[item] === 1 && tryAppendUdp(batch, table, item, i, ipLen, payload)) {
    batch.sizes[i] = DROPPED;
    return;
  }
  if (item >= 0) table.open[item] = 0;
  newItem(table, i, ipLen, UDP_HEADER, PROTO_UDP, payload);
}

function newItem(table: GroTable, i: number, ipLen: number, l4Len: number, proto: number, payload: number): number {
  const n = table.count++;
  table.slot[n] = i;
  table.gsoSize[n] = payload;
  table.segments[n] = 1;
  table.ipLen[n] = ipLen;
  table.tcpLen[n] = l4Len;
  table.proto[n] = proto;
  table.open[n] = 1;
  return n;
}

/** The latest table entry of the flow of packet (buf, o), or -1. */
function findFlow(batch: PacketBatch, table: GroTable, buf: Buffer, o: number, ipLen: number): number {
  const stop = Math.max(0, table.count - FLOW_LOOKBACK);
  for (let n = table.count - 1; n >= stop; n--) {
    const s = table.slot[n]!;
    if (sameFlow(batch.bufs[s]!, batch.offsets[s]!, table.ipLen[n]!, buf, o, ipLen)) return n;
  }
  return -1;
}

/** A TCP or UDP packet of a flow that cannot be merged ends that flow's open item, so order is kept. */
function closeFlowOf(batch: PacketBatch, table: GroTable, i: number): void {
  if (table.count === 0) return;
  const buf = batch.bufs[i]!;
  const o = batch.offsets[i]!;
  const size = batch.sizes[i]!;
  if (size < 28) return;
  const version = buf[o]! >>> 4;
  const ipLen = version === 4 ? (buf[o]! & 0x0f) * 4 : version === 6 ? 40 : 0;
  const proto = buf[o + (version === 4 ? 9 : 6)];
  if (ipLen < 20 || size < ipLen + UDP_HEADER || (proto !== PROTO_TCP && proto !== PROTO_UDP)) return;
  const item = findFlow(batch, table, buf, o, ipLen);
  if (item >= 0) table.open[item] = 0;
}

function tryAppend(
  batch: PacketBatch,
  table: GroTable,
  item: number,
  i: number,
  ipLen: number,
  tcpLen: number,
  payload: number,
  seq: number,
  psh: boolean,
): boolean {
  const s = table.slot[item]!;
  const head = batch.bufs[s]!;
  const ho = batch.offsets[s]!;
  if (seq !== table.nextSeq[item] || payload > table.gsoSize[item]! || table.tcpLen[item] !== tcpLen) return false;
  if (!headersMatch(head, ho, batch.bufs[i]!, batch.offsets[i]!, ipLen, tcpLen)) return false;
  if (!appendPayload(batch, table, item, i, ipLen, tcpLen, payload, PROTO_TCP)) return false;
  table.nextSeq[item] = (seq + payload) % 0x100000000;
  if (psh) {
    head[ho + ipLen + 13] = head[ho + ipLen + 13]! | TCP_PSH;
    table.open[item] = 0;
  }
  return true;
}

function tryAppendUdp(
  batch: PacketBatch,
  table: GroTable,
  item: number,
  i: number,
  ipLen: number,
  payload: number,
): boolean {
  const s = table.slot[item]!;
  if (payload > table.gsoSize[item]! || table.segments[item]! >= UDP_MAX_SEGMENTS) return false;
  if (!ipHeadersMatch(batch.bufs[s]!, batch.offsets[s]!, batch.bufs[i]!, batch.offsets[i]!, ipLen)) return false;
  return appendPayload(batch, table, item, i, ipLen, UDP_HEADER, payload, PROTO_UDP);
}

/**
 * What appending packet i to an item is for TCP and UDP alike, once its headers fit: room in
 * the head's buffer, each checksum verified (a bad one ends the item), the payload copied behind
 * the head's. A shorter payload than the item's gso_size ends the item.
 */
function appendPayload(
  batch: PacketBatch,
  table: GroTable,
  item: number,
  i: number,
  ipLen: number,
  l4Len: number,
  payload: number,
  proto: number,
): boolean {
  const s = table.slot[item]!;
  const head = batch.bufs[s]!;
  const ho = batch.offsets[s]!;
  const hsize = batch.sizes[s]!;
  const buf = batch.bufs[i]!;
  const o = batch.offsets[i]!;
  if (hsize + payload > MAX_IP || ho + hsize + payload > head.length) return false;
  // The kernel never checks a merged packet's checksum again: check each segment's now.
  if (table.segments[item] === 1 && !transportChecksumValid(head, ho, ipLen, hsize, proto)) {
    table.open[item] = 0;
    return false;
  }
  if (!transportChecksumValid(buf, o, ipLen, batch.sizes[i]!, proto)) {
    table.open[item] = 0;
    return false;
  }
  buf.copy(head, ho + hsize, o + ipLen + l4Len, o + batch.sizes[i]!);
  batch.sizes[s] = hsize + payload;
  table.segments[item] = table.segments[item]! + 1;
  if (payload < table.gsoSize[item]!) table.open[item] = 0;
  return true;
}

/** Fixes the lengths of a merged packet, leaves the pseudo-header sum in its checksum, adds its header. */
function finishSuperPacket(batch: PacketBatch, table: GroTable, item: number): void {
  const s = table.slot[item]!;
  const buf = batch.bufs[s]!;
  const o = batch.offsets[s]!;
  const size = batch.sizes[s]!;
  const ipLen = table.ipLen[item]!;
  const v4 = buf[o]! >>> 4 === 4;
  if (v4) {
    put16be(buf, o + 2, size);
    setIpv4Checksum(buf, o);
  } else {
    put16be(buf, o + 4, size - 40);
  }
  if (table.proto[item] === PROTO_UDP) {
    put16be(buf, o + ipLen + 4, size - ipLen);
    put16be(buf, o + ipLen + 6, pseudoHeaderSum(buf, o, PROTO_UDP, size - ipLen));
    prependHeader(batch, s, VNET_F_NEEDS_CSUM, GSO_UDP_L4, ipLen + UDP_HEADER, table.gsoSize[item]!, ipLen, 6);
    return;
  }
  put16be(buf, o + ipLen + 16, pseudoHeaderSum(buf, o, PROTO_TCP, size - ipLen));
  prependHeader(
    batch,
    s,
    VNET_F_NEEDS_CSUM,
    v4 ? GSO_TCPV4 : GSO_TCPV6,
    ipLen + table.tcpLen[item]!,
    table.gsoSize[item]!,
    ipLen,
    16,
  );
}
