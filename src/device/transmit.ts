/**
 * The transmit path, batch by batch: TUN read (through the flow queue) → route each packet to
 * a peer → seal each peer's run in place → send each run through its peer's link. The batch,
 * its endpoint slots and its per-packet peers are this object's, reused for every batch;
 * dropped packets are counted, marked and compacted away, never thrown.
 */
import {
  compactWithOwners,
  DROPPED,
  newBatch,
  type PacketBatch,
  pushPacket,
  resetOffsets,
  runEnd,
} from '../core/batch.js';
import { sealRange } from '../core/crypto-batch.js';
import type { DropCounters } from '../core/drops.js';
import { copyEndpoint, ENDPOINT_SIZE, isOuterPacketTo, newEndpoints } from '../core/endpoint.js';
import type { FlowQueueOptions } from '../core/flow-queue.js';
import { packetError } from '../edge/edges.js';
import type { Peer } from '../peer/peer.js';
import type { LinkLookup, PeerLookup } from './path-context.js';
import { TcpLink } from './tcp-link.js';
import { type PacketSource, TunReader } from './tun-reader.js';
import type { UdpPort } from './udp-port.js';

/**
 * One batch of one packet for every interface in the process: a send completes before
 * returning (sendmmsg, or a copy into the TCP framing buffer), so keepalives and control
 * packets allocate nothing.
 */
let single: PacketBatch | null = null;
const singlePeer: (Peer | null)[] = [null];

export class Transmitter {
  private readonly reader: TunReader;
  private readonly batch: PacketBatch;
  private readonly endpoints: Buffer;
  /** Moves endpoints with their packets in compactWithOwners(): made once, not per batch. */
  private readonly endpointSidecar: { buf: Buffer; slotSize: number };
  private readonly peers: (Peer | null)[];

  constructor(
    tun: PacketSource,
    private readonly table: PeerLookup,
    private readonly links: LinkLookup,
    private readonly drops: DropCounters,
    /** A packet to `peer` was its own outer packet come back: a routing loop. */
    private readonly looped: (peer: Peer) => void,
    /** A socket refused a whole run of packets (they are counted as io drops). */
    private readonly failed: (what: string, error: unknown) => void,
    options: { offloads: boolean; batchSize: number; flowQueue: FlowQueueOptions },
  ) {
    this.reader = new TunReader(tun, drops, options.offloads, options.flowQueue);
    this.batch = newBatch(options.batchSize);
    this.endpoints = newEndpoints(options.batchSize);
    this.endpointSidecar = { buf: this.endpoints, slotSize: ENDPOINT_SIZE };
    this.peers = new Array<Peer | null>(options.batchSize).fill(null);
  }

  queueInfo(): ReturnType<TunReader['queueInfo']> {
    return this.reader.queueInfo();
  }

  /** Packets taken from the TUN but not sent yet: call again even if the TUN is not readable. */
  get pending(): boolean {
    return this.reader.pending;
  }

  /**
   * Reads one batch from the TUN and sends it; returns packets read (0: nothing to do).
   * `beforeSealing` runs between the read and the sealing, with the number of packets read.
   */
  fromTun(now: number, beforeSealing: (read: number) => void): number {
    const batch = this.batch;
    resetOffsets(batch);
    if (this.reader.read(batch, now) === 0) return 0;
    const read = batch.count;
    beforeSealing(read);
    this.route(batch);
    const peers = this.peers;
    for (let start = 0, end = 0; start < batch.count; start = end) {
      end = runEnd(peers, start, batch.count);
      const peer = peers[start];
      if (peer == null) continue;
      sealRange(batch, start, end, peer.keys.primary, peer.id, peer.drops);
      for (let i = start; i < end; i++) copyEndpoint(this.endpoints, i, peer.endpoint, 0);
    }
    compactWithOwners(batch, this.peers, this.endpointSidecar);
    this.send(batch, this.endpoints, this.peers, now);
    return read;
  }

  /** Sends one packet, already in plain form, to a peer: sealed as data, or raw for control. */
  sendOne(peer: Peer, data: Uint8Array, seal: boolean, now: number): void {
    const batch = this.one(data);
    if (seal && sealRange(batch, 0, 1, peer.keys.primary, peer.id, peer.drops) > 0) return;
    singlePeer[0] = peer;
    this.send(batch, peer.endpoint, singlePeer, now);
    singlePeer[0] = null;
  }

  /** Sends one control packet, untouched, through a link no peer may have yet. */
  sendRaw(link: UdpPort | TcpLink, endpoint: Buffer, data: Uint8Array): void {
    const batch = this.one(data);
    if (link instanceof TcpLink) link.send(batch, 0, 1);
    else sendRange(link, batch, endpoint, 0, 1);
  }

  private one(data: Uint8Array): PacketBatch {
    single ??= newBatch(1);
    resetOffsets(single);
    pushPacket(single, data);
    return single;
  }

  private route(batch: PacketBatch): void {
    const { bufs, offsets, sizes } = batch;
    for (let i = 0; i < batch.count; i++) {
      const peer = this.table.route(bufs[i]!, offsets[i]!, sizes[i]!);
      this.peers[i] = peer;
      if (peer === null) {
        this.drops.noRoute++;
        sizes[i] = DROPPED;
        continue;
      }
      if (isOuterPacketTo(peer.endpoint, 0, bufs[i]!, offsets[i]!, sizes[i]!)) {
        peer.drops.loop++;
        sizes[i] = DROPPED;
        this.peers[i] = null;
        this.looped(peer);
        continue;
      }
      peer.stats.vpnTxPackets++;
      peer.stats.vpnTxBytes += sizes[i]!;
    }
  }

  /** Sends a compacted batch, each run of packets through the link of its peer. */
  private send(batch: PacketBatch, endpoints: Buffer, peers: (Peer | null)[], now: number): void {
    for (let start = 0, end = 0; start < batch.count; start = end) {
      end = runEnd(peers, start, batch.count);
      const peer = peers[start];
      if (peer != null) this.sendRun(batch, endpoints, peer, start, end, now);
    }
  }

  /** Sends packets [start, end) of the batch, all for `peer`, through its link. */
  private sendRun(batch: PacketBatch, endpoints: Buffer, peer: Peer, start: number, end: number, now: number): void {
    const link = this.links.linkOf(peer);
    if (link === undefined) {
      // A TCP peer still waiting for its connection, or a peer being torn down.
      peer.drops.io += end - start;
      return;
    }
    let sent = 0;
    try {
      sent = link instanceof TcpLink ? link.send(batch, start, end) : sendRange(link, batch, endpoints, start, end);
    } catch (error) {
      this.failed(`sending to peer ${peer.id}`, error);
    }
    let refused = 0;
    for (let i = start; i < start + sent; i++) {
      if (batch.sizes[i]! < 0) {
        // Refused for this packet alone (no route, the path's device gone): consumed, and a drop.
        peer.drops.io++;
        refused = batch.sizes[i]!;
        continue;
      }
      peer.stats.linkTxPackets++;
      peer.stats.linkTxBytes += batch.sizes[i]!;
    }
    if (refused < 0) this.failed(`sending to peer ${peer.id}`, packetError(refused));
    peer.drops.io += end - start - sent;
    if (sent > 0) peer.lastSent = now;
  }
}

function sendRange(port: UdpPort, batch: PacketBatch, endpoints: Buffer, start: number, end: number): number {
  if (start === 0 && end === batch.count) return port.bind.send(batch, endpoints);
  const view: PacketBatch = {
    bufs: batch.bufs.slice(start, end),
    offsets: batch.offsets.subarray(start, end),
    sizes: batch.sizes.subarray(start, end),
    count: end - start,
  };
  return port.bind.send(view, endpoints.subarray(start * ENDPOINT_SIZE, end * ENDPOINT_SIZE));
}
