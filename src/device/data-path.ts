/**
 * The two data paths of an interface, batch by batch:
 *
 *   transmit: TUN read → route each packet to a peer → seal runs per peer → send runs per link
 *   receive:  UDP recvmmsg (or a TCP stream's packets) → classify, find the peer → open runs per
 *             peer → consume keepalives → TUN write
 *
 * Buffers are the interface's, the socket's and the stream's own, reused for every batch;
 * dropped packets are counted, marked and compacted away, never thrown.
 */
import { compact, DROPPED, MAX_BATCH, newBatch, type PacketBatch, pushPacket, resetOffsets } from '../core/batch.js';
import { openRange, sealRange } from '../core/crypto-batch.js';
import { coalesceForTun } from '../core/gso.js';
import { classify, isExitNotify, isKeepalive, KEEPALIVE_MESSAGE, PacketKind, readPeerId } from '../core/wire.js';
import { envInteger } from '../edge/env.js';
import { copyEndpoint, ENDPOINT_SIZE, type Endpoint, readEndpoint } from '../edge/udp.js';
import type { Peer } from '../peer/peer.js';
import type { OvpnInterface } from './ovpn-interface.js';
import { TcpLink } from './tcp-link.js';
import type { UdpSocket } from './udp-socket.js';

/** Bytes of the endpoint slot that identify a path: remote and local address, not reserved tail. */
const PATH_BYTES = 44;
/** Bytes of the endpoint slot that identify the remote side: family, port, address. */
const REMOTE_BYTES = 20;
/** Where the remote address starts in the slot (after family and port). */
const ADDRESS_START = 4;

export function transmit(iface: OvpnInterface, batch: PacketBatch, now: number): void {
  const peers = iface.txPeers;
  const { bufs, offsets, sizes } = batch;
  for (let i = 0; i < batch.count; i++) {
    const peer = iface.routePacket(bufs[i]!, offsets[i]!, sizes[i]!);
    peers[i] = peer;
    if (peer === null) {
      iface.drops.noRoute++;
      sizes[i] = DROPPED;
      continue;
    }
    peer.stats.vpnTxPackets++;
    peer.stats.vpnTxBytes += sizes[i]!;
  }
  forEachRun(peers, batch.count, (peer, start, end) => {
    sealRange(batch, start, end, peer.keys.primary, peer.id, peer.drops);
    for (let i = start; i < end; i++) copyEndpoint(iface.txEndpoints, i, peer.endpoint, 0);
  });
  compactWithPeers(batch, peers, iface.txEndpoints);
  sendBatch(iface, batch, iface.txEndpoints, peers, now);
}

/** Sends a compacted batch, each run of packets through the link (UDP socket, TCP stream) of its peer. */
function sendBatch(
  iface: OvpnInterface,
  batch: PacketBatch,
  endpoints: Buffer,
  peers: (Peer | null)[],
  now: number,
): void {
  forEachRun(peers, batch.count, (peer, start, end) => {
    const link = iface.linkOf(peer);
    if (link === undefined) {
      // A TCP peer still waiting for its connection, or a peer being torn down.
      peer.drops.io += end - start;
      return;
    }
    const sent = link instanceof TcpLink ? link.send(batch, start, end) : sendRange(link, batch, endpoints, start, end);
    for (let i = start; i < start + sent; i++) {
      if (batch.sizes[i]! < 0) continue;
      peer.stats.linkTxPackets++;
      peer.stats.linkTxBytes += batch.sizes[i]!;
    }
    peer.drops.io += end - start - sent;
    if (sent > 0) peer.lastSent = now;
  });
}

function sendRange(socket: UdpSocket, batch: PacketBatch, endpoints: Buffer, start: number, end: number): number {
  if (start === 0 && end === batch.count) return socket.bind.send(batch, endpoints);
  const view: PacketBatch = {
    bufs: batch.bufs.slice(start, end),
    offsets: batch.offsets.subarray(start, end),
    sizes: batch.sizes.subarray(start, end),
    count: end - start,
  };
  return socket.bind.send(view, endpoints.subarray(start * ENDPOINT_SIZE, end * ENDPOINT_SIZE));
}

/**
 * Batches handled per readiness callback before yielding to the event loop, so that one busy
 * direction cannot hold up the other: ACKs and pings going back wait behind whatever is
 * handled in one go. 4 gave ~2 ms more ping RTT under TCP load than 1, for no more throughput.
 */
export const BATCHES_PER_WAKEUP = 1;

/**
 * Packets moved per TUN read and per UDP receive (at most MAX_BATCH; OVPN_DATA_PATH_BATCH sets
 * it). A batch leaves as one burst, which the far end's socket buffer must take without loss.
 * How long a ping waits behind bulk is now set by the transmit flow queue's byte limit rather
 * than by this (docs/ARCHITECTURE.md, "Transmit queue"): 48 instead of 128 measured no better.
 */
export const DATA_PATH_BATCH = envInteger('OVPN_DATA_PATH_BATCH', MAX_BATCH, 1, MAX_BATCH);

export function receiveFrom(iface: OvpnInterface, socket: UdpSocket, now: number): void {
  // Also reached from setImmediate below, by which time the socket may have been closed.
  if (iface.closed || socket.bind.closed) return;
  for (let round = 0; round < BATCHES_PER_WAKEUP; round++) {
    const n = socket.receive();
    if (n === 0) return;
    receiveDatagrams(iface, socket, now);
    if (iface.closed) return;
    if (n < socket.rxBatch.bufs.length) return;
  }
  // Full batches every round: yield to the event loop, but come back even if the socket looks empty,
  // since with GRO the rest of a coalesced datagram may be waiting inside the shim.
  setImmediate(() => receiveFrom(iface, socket, performance.now()));
}

/** A UDP batch: each datagram finds its peer by the peer-id in its header. */
function receiveDatagrams(iface: OvpnInterface, socket: UdpSocket, now: number): void {
  const batch = socket.rxBatch;
  const endpoints = socket.rxEndpoints;
  const peers = iface.rxPeers;
  const { bufs, offsets, sizes } = batch;
  for (let i = 0; i < batch.count; i++) {
    peers[i] = null;
    const size = sizes[i]!;
    const kind = size < 0 ? PacketKind.Malformed : classify(bufs[i]!, offsets[i]!, size);
    if (kind === PacketKind.DataV2 && size >= 4) {
      const peer = iface.peers.get(readPeerId(bufs[i]!, offsets[i]!));
      if (peer !== undefined && peer.transport === 'udp' && peer.localPort === socket.port) {
        peers[i] = peer;
        peer.stats.linkRxPackets++;
        peer.stats.linkRxBytes += size;
        continue;
      }
      iface.drops.unknownPeer++;
    } else if (kind === PacketKind.Control) {
      const remote = readEndpoint(endpoints, i);
      handUp(iface, peerAt(iface, socket, endpoints, i), socket.port, remote, bufs[i]!, offsets[i]!, size);
    } else {
      countNonData(iface, kind);
    }
    sizes[i] = DROPPED;
  }
  deliver(iface, batch, peers, endpoints, now);
}

/**
 * Packets from a TCP stream. The connection is the peer (as in the kernel module), so data
 * packets need no peer-id lookup; a connection not yet given to a peer (`peer` null) carries
 * only control packets.
 */
export function receiveStream(
  iface: OvpnInterface,
  peer: Peer | null,
  link: TcpLink,
  localPort: number,
  batch: PacketBatch,
  now: number,
): void {
  if (iface.closed) return;
  const peers = iface.rxPeers;
  const { bufs, offsets, sizes } = batch;
  for (let i = 0; i < batch.count; i++) {
    peers[i] = null;
    const size = sizes[i]!;
    const kind = classify(bufs[i]!, offsets[i]!, size);
    if (kind === PacketKind.DataV2 && size >= 4 && peer !== null) {
      peers[i] = peer;
      peer.stats.linkRxPackets++;
      peer.stats.linkRxBytes += size;
      continue;
    }
    if (kind === PacketKind.DataV2) iface.drops.unknownPeer++;
    else if (kind === PacketKind.Control)
      handUp(iface, peer?.id ?? null, localPort, link.remote, bufs[i]!, offsets[i]!, size);
    else countNonData(iface, kind);
    sizes[i] = DROPPED;
  }
  deliver(iface, batch, peers, null, now);
}

function countNonData(iface: OvpnInterface, kind: PacketKind): void {
  if (kind === PacketKind.DataV1) iface.drops.dataV1++;
  else iface.drops.malformed++;
}

/** Opens each peer's run, accepts what authenticates, and writes the survivors to the TUN. */
function deliver(
  iface: OvpnInterface,
  batch: PacketBatch,
  peers: (Peer | null)[],
  endpoints: Buffer | null,
  now: number,
): void {
  const { sizes } = batch;
  forEachRun(peers, batch.count, (peer, start, end) => {
    openRange(batch, start, end, peer.keys, peer.drops);
    for (let i = start; i < end; i++) if (sizes[i] !== DROPPED) accept(peer, batch, i, endpoints, now);
    if (peer.floated) {
      peer.floated = false;
      iface.notifyFloat(peer);
    }
  });
  compact(batch, endpoints === null ? undefined : { buf: endpoints, slotSize: ENDPOINT_SIZE });
  if (batch.count === 0 || iface.closed) return;
  if (iface.tun.offloads !== null) coalesceForTun(batch, iface.groTable, iface.gro);
  const written = iface.tun.write(batch);
  iface.drops.io += batch.count - written;
}

/** After authentication: note liveness, follow the peer's path, consume keepalives. */
function accept(peer: Peer, batch: PacketBatch, i: number, endpoints: Buffer | null, now: number): void {
  const buf = batch.bufs[i]!;
  const offset = batch.offsets[i]!;
  const size = batch.sizes[i]!;
  peer.lastRecv = now;
  if (endpoints !== null) followPath(peer, endpoints, i);
  if (isKeepalive(buf, offset, size) || isExitNotify(buf, offset, size)) {
    batch.sizes[i] = DROPPED;
    return;
  }
  const version = size > 0 ? buf[offset]! >>> 4 : 0;
  if (version !== 4 && version !== 6) {
    peer.drops.malformed++;
    batch.sizes[i] = DROPPED;
    return;
  }
  peer.stats.vpnRxPackets++;
  peer.stats.vpnRxBytes += size;
}

/**
 * The packet proved it comes from the peer: remember where it came from and which local address
 * it reached, so replies leave from that address (multihome) and follow a move (float). Only
 * authenticated packets get here, so a forged source address never moves a peer.
 */
function followPath(peer: Peer, endpoints: Buffer, i: number): void {
  const slot = i * ENDPOINT_SIZE;
  if (endpoints.compare(peer.endpoint, 0, PATH_BYTES, slot, slot + PATH_BYTES) === 0) return;
  // A new remote address is a float, worth telling the control plane; a new local address
  // alone (multihome, a changed route) is not.
  if (endpoints.compare(peer.endpoint, 0, REMOTE_BYTES, slot, slot + REMOTE_BYTES) !== 0) peer.floated = true;
  copyEndpoint(peer.endpoint, 0, endpoints, i);
}

/** The UDP peer at the IP address that sent datagram i, if any: for control packets only. */
function peerAt(iface: OvpnInterface, socket: UdpSocket, endpoints: Buffer, i: number): number | null {
  const slot = i * ENDPOINT_SIZE;
  for (const peer of iface.peers.values()) {
    if (peer.transport !== 'udp' || peer.localPort !== socket.port) continue;
    if (endpoints.compare(peer.endpoint, ADDRESS_START, REMOTE_BYTES, slot + ADDRESS_START, slot + REMOTE_BYTES) === 0)
      return peer.id;
  }
  return null;
}

/** Non-data packets go to the control plane untouched. */
function handUp(
  iface: OvpnInterface,
  peerId: number | null,
  localPort: number,
  remote: Endpoint,
  buf: Buffer,
  offset: number,
  size: number,
): void {
  const data = Buffer.from(buf.subarray(offset, offset + size));
  iface.emit('packet-ntf', { ifname: iface.name, peerId, localPort, remote, data });
}

/** Sends one packet, already in plain form, to a peer: sealed as data, or raw for control. */
export function sendOne(iface: OvpnInterface, peer: Peer, data: Uint8Array, seal: boolean, now: number): void {
  // One scratch batch for every interface in the process: a send completes before returning
  // (sendmmsg, or a copy into the TCP framing buffer), so keepalives allocate nothing.
  single ??= newBatch(1);
  const batch = single;
  resetOffsets(batch);
  pushPacket(batch, data);
  if (seal && sealRange(batch, 0, 1, peer.keys.primary, peer.id, peer.drops) > 0) return;
  singlePeer[0] = peer;
  sendBatch(iface, batch, peer.endpoint, singlePeer, now);
  singlePeer[0] = null;
}

let single: PacketBatch | null = null;
const singlePeer: (Peer | null)[] = [null];

export function sendKeepalive(iface: OvpnInterface, peer: Peer, now: number): void {
  sendOne(iface, peer, KEEPALIVE_MESSAGE, true, now);
}

/** Calls fn for each maximal run of consecutive packets bound to the same (non-null) peer. */
function forEachRun(peers: (Peer | null)[], count: number, fn: (peer: Peer, start: number, end: number) => void): void {
  let start = 0;
  while (start < count) {
    const peer = peers[start];
    let end = start + 1;
    while (end < count && peers[end] === peer) end++;
    if (peer != null) fn(peer, start, end);
    start = end;
  }
}

/** compact() for the transmit side, keeping the per-packet peer array aligned. */
function compactWithPeers(batch: PacketBatch, peers: (Peer | null)[], endpoints: Buffer): void {
  let kept = 0;
  for (let i = 0; i < batch.count; i++) if (batch.sizes[i] !== DROPPED) peers[kept++] = peers[i]!;
  compact(batch, { buf: endpoints, slotSize: ENDPOINT_SIZE });
}
