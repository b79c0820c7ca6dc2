/**
 * The two data paths of an interface, batch by batch:
 *
 *   transmit: TUN read → route each packet to a peer → seal runs per peer → UDP sendmmsg
 *   receive:  UDP recvmmsg → classify, find the peer by peer-id → open runs per peer →
 *             consume keepalives → TUN write
 *
 * Buffers are the interface's and the socket's own, reused for every batch; dropped packets are
 * counted, marked and compacted away, never thrown.
 */
import { compact, DROPPED, newBatch, pushPacket, type PacketBatch } from '../core/batch.js';
import { openRange, sealRange } from '../core/crypto-batch.js';
import { classify, isExitNotify, isKeepalive, KEEPALIVE_MESSAGE, PacketKind, readPeerId } from '../core/wire.js';
import { ENDPOINT_SIZE, copyEndpoint, readEndpoint } from '../edge/udp.js';
import type { Peer } from '../peer/peer.js';
import type { OvpnInterface } from './ovpn-interface.js';
import type { UdpSocket } from './udp-socket.js';

/** Bytes of the endpoint slot that identify a path: remote and local address, not reserved tail. */
const PATH_BYTES = 44;

/** Which peer a packet read from the TUN goes to. */
function route(iface: OvpnInterface): Peer | null {
  // Point-to-point: everything goes to the one peer. Multi-peer routing by VPN address is not
  // built yet: rather than guess, MP packets count as noRoute until it is.
  return iface.mode === 'P2P' ? iface.p2pPeer : null;
}

export function transmit(iface: OvpnInterface, batch: PacketBatch, now: number): void {
  const peers = iface.txPeers;
  const { sizes } = batch;
  for (let i = 0; i < batch.count; i++) {
    const peer = route(iface);
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

/** Sends a compacted batch, each run of packets through the socket of its peer. */
function sendBatch(iface: OvpnInterface, batch: PacketBatch, endpoints: Buffer, peers: (Peer | null)[], now: number): void {
  forEachRun(peers, batch.count, (peer, start, end) => {
    const socket = iface.socketOf(peer);
    if (socket === undefined) {
      iface.drops.io += end - start;
      return;
    }
    const sent = sendRange(socket, batch, endpoints, start, end);
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

export function receiveFrom(iface: OvpnInterface, socket: UdpSocket, now: number): void {
  if (iface.closed) return;
  for (let round = 0; round < 4; round++) {
    if (socket.receive() === 0) return;
    receiveBatch(iface, socket, now);
    if (iface.closed) return;
  }
}

function receiveBatch(iface: OvpnInterface, socket: UdpSocket, now: number): void {
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
      if (peer !== undefined && peer.localPort === socket.port) {
        peers[i] = peer;
        peer.stats.linkRxPackets++;
        peer.stats.linkRxBytes += size;
        continue;
      }
      iface.drops.unknownPeer++;
    } else if (kind === PacketKind.Control) {
      handUp(iface, socket, bufs[i]!, offsets[i]!, size, endpoints, i);
    } else if (kind === PacketKind.DataV1) {
      iface.drops.dataV1++;
    } else {
      iface.drops.malformed++;
    }
    sizes[i] = DROPPED;
  }
  forEachRun(peers, batch.count, (peer, start, end) => {
    openRange(batch, start, end, peer.keys, peer.drops);
    for (let i = start; i < end; i++) if (sizes[i] !== DROPPED) accept(peer, batch, i, endpoints, now);
  });
  compact(batch, { buf: endpoints, slotSize: ENDPOINT_SIZE });
  if (batch.count === 0) return;
  const written = iface.tun.write(batch);
  iface.drops.io += batch.count - written;
}

/** After authentication: note liveness, follow the peer's path, consume keepalives. */
function accept(peer: Peer, batch: PacketBatch, i: number, endpoints: Buffer, now: number): void {
  const buf = batch.bufs[i]!;
  const offset = batch.offsets[i]!;
  const size = batch.sizes[i]!;
  peer.lastRecv = now;
  // The packet proved it comes from the peer: remember where it came from and which local
  // address it reached, so replies leave from that address (multihome) and follow a move.
  if (endpoints.compare(peer.endpoint, 0, PATH_BYTES, i * ENDPOINT_SIZE, i * ENDPOINT_SIZE + PATH_BYTES) !== 0) {
    copyEndpoint(peer.endpoint, 0, endpoints, i);
  }
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

/** Non-data packets go to the control plane untouched, with the peer they came from if known. */
function handUp(iface: OvpnInterface, socket: UdpSocket, buf: Buffer, offset: number, size: number, endpoints: Buffer, i: number): void {
  let peerId: number | null = null;
  for (const peer of iface.peers.values()) {
    if (peer.localPort === socket.port && endpoints.compare(peer.endpoint, 4, 20, i * ENDPOINT_SIZE + 4, i * ENDPOINT_SIZE + 20) === 0) {
      peerId = peer.id;
      break;
    }
  }
  const data = Buffer.from(buf.subarray(offset, offset + size));
  iface.emit('packet-ntf', { ifname: iface.name, peerId, localPort: socket.port, remote: readEndpoint(endpoints, i), data });
}

export function sendKeepalive(iface: OvpnInterface, peer: Peer, now: number): void {
  const batch = newBatch(1, 256);
  pushPacket(batch, KEEPALIVE_MESSAGE);
  const peers = [peer];
  if (sealRange(batch, 0, 1, peer.keys.primary, peer.id, peer.drops) > 0) return;
  sendBatch(iface, batch, peer.endpoint, peers, now);
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
