/**
 * The receive path, batch by batch: a UDP batch (or a TCP stream's packets) → classify each
 * packet and find its peer → open each peer's run in place → note liveness, follow the peer's
 * path, consume keepalives → write the survivors to the TUN. Control packets go up untouched.
 */
import { compact, DROPPED, MAX_BATCH, type PacketBatch, packetView, runEnd } from '../core/batch.js';
import { openRange } from '../core/crypto-batch.js';
import type { DropCounters } from '../core/drops.js';
import { copyEndpoint, ENDPOINT_SIZE, samePath, sameRemote } from '../core/endpoint.js';
import { coalesceForTun, GroTable } from '../core/gso.js';
import { classify, isExitNotify, isKeepalive, PacketKind, PEER_ID_UNDEF, readPeerId } from '../core/wire.js';
import { errorCode, packetError, TUN_GONE_CODE, type Tun } from '../edge/edges.js';
import type { Peer } from '../peer/peer.js';
import type { DataPathHost, PeerLookup } from './path-context.js';
import type { TcpLink } from './tcp-link.js';
import type { UdpPort } from './udp-port.js';

export class Receiver {
  private readonly peers = new Array<Peer | null>(MAX_BATCH).fill(null);
  /** Moves endpoints with their packets in compact(): one object reused, not one per batch. */
  private readonly endpointSidecar: { buf: Buffer; slotSize: number } = {
    buf: Buffer.alloc(0),
    slotSize: ENDPOINT_SIZE,
  };
  private readonly groTable = new GroTable();

  constructor(
    private readonly tun: Tun,
    private readonly table: PeerLookup,
    private readonly drops: DropCounters,
    private readonly host: DataPathHost,
    /** Merge TCP segments, and UDP datagrams, written to the TUN (needs TUN offloads). */
    private readonly gro: { tcp: boolean; udp: boolean },
  ) {}

  /** The batch a UDP port just received: each datagram finds its peer by its peer-id. */
  fromUdp(udp: UdpPort, now: number): void {
    const batch = udp.rxBatch;
    const endpoints = udp.rxEndpoints;
    const peers = this.peers;
    const { bufs, offsets, sizes } = batch;
    for (let i = 0; i < batch.count; i++) {
      peers[i] = null;
      const size = sizes[i]!;
      const kind = size < 0 ? PacketKind.Malformed : classify(bufs[i]!, offsets[i]!, size);
      if (kind === PacketKind.DataV2 && size >= 4) {
        const id = readPeerId(bufs[i]!, offsets[i]!);
        // A sender that has no peer-id yet puts the undefined one: find it by where it is.
        const peer = id === PEER_ID_UNDEF ? this.table.atRemote(udp.port, endpoints, i) : this.table.get(id);
        if (peer != null && peer.transport === 'udp' && peer.localPort === udp.port) {
          this.countLinkRx(peer, i, size);
          continue;
        }
        this.drops.unknownPeer++;
      } else if (kind === PacketKind.Control) {
        const peerId = this.table.atRemoteAddress(udp.port, endpoints, i)?.id ?? null;
        this.host.controlPackets.pushFromSlot(peerId, udp.port, endpoints, i, packetView(batch, i));
      } else {
        this.countNonData(kind);
      }
      sizes[i] = DROPPED;
    }
    this.deliver(batch, endpoints, now);
  }

  /**
   * Packets from a TCP stream. The connection is the peer (as in the kernel module), so data
   * packets need no peer-id lookup. A connection not given to a peer (`peer` null) carries
   * control packets, and may prove that it is a listening peer's real connection: see claim.
   */
  fromStream(peer: Peer | null, link: TcpLink, localPort: number, batch: PacketBatch, now: number): void {
    const { bufs, offsets, sizes } = batch;
    let owner = peer;
    for (let i = 0; i < batch.count; i++) {
      this.peers[i] = null;
      const size = sizes[i]!;
      const kind = classify(bufs[i]!, offsets[i]!, size);
      if (kind === PacketKind.DataV2 && size >= 4 && owner !== null) {
        this.countLinkRx(owner, i, size);
        continue;
      }
      if (kind === PacketKind.DataV2 && size >= 4) {
        owner = this.claim(link, localPort, batch, i, now);
        if (owner !== null) continue;
      }
      if (kind === PacketKind.DataV2) this.drops.unknownPeer++;
      else if (kind === PacketKind.Control)
        this.host.controlPackets.push(peer?.id ?? null, localPort, link.remote, packetView(batch, i));
      else this.countNonData(kind);
      sizes[i] = DROPPED;
    }
    if (peer === null) this.host.unassignedStream(batch.count);
    this.deliver(batch, null, now);
    // A connection whose packets authenticated is its peer's for good.
    if (owner !== null && owner === peer && owner.lastRecv === now) this.host.streamProven(owner, link);
  }

  /**
   * A data packet on a connection no peer has: if it authenticates as the TCP peer its peer-id
   * names (listening on this port), the connection is that peer's real one, and the peer moves
   * to it. So a connection that got there first and sends nothing that authenticates cannot
   * keep a peer from its client. The packet is opened and accepted here; returns the peer.
   */
  private claim(link: TcpLink, localPort: number, batch: PacketBatch, i: number, now: number): Peer | null {
    const peer = this.table.get(readPeerId(batch.bufs[i]!, batch.offsets[i]!));
    if (peer === undefined || peer.transport !== 'tcp' || peer.localPort !== localPort) return null;
    const size = batch.sizes[i]!;
    openRange(batch, i, i + 1, peer.keys, peer.drops);
    if (batch.sizes[i] === DROPPED) return null;
    peer.stats.linkRxPackets++;
    peer.stats.linkRxBytes += size;
    this.host.streamProven(peer, link);
    this.accept(peer, batch, i, null, now);
    return peer;
  }

  private countLinkRx(peer: Peer, i: number, size: number): void {
    this.peers[i] = peer;
    peer.stats.linkRxPackets++;
    peer.stats.linkRxBytes += size;
  }

  private countNonData(kind: PacketKind): void {
    if (kind === PacketKind.DataV1) this.drops.dataV1++;
    else this.drops.malformed++;
  }

  /** Opens each peer's run, accepts what authenticates, and writes the survivors to the TUN. */
  private deliver(batch: PacketBatch, endpoints: Buffer | null, now: number): void {
    const { sizes } = batch;
    const peers = this.peers;
    for (let start = 0, end = 0; start < batch.count; start = end) {
      end = runEnd(peers, start, batch.count);
      const peer = peers[start];
      if (peer == null) continue;
      openRange(batch, start, end, peer.keys, peer.drops);
      for (let i = start; i < end; i++) if (sizes[i] !== DROPPED) this.accept(peer, batch, i, endpoints, now);
      if (peer.floated) {
        peer.floated = false;
        this.host.floated(peer);
      }
    }
    if (endpoints === null) compact(batch);
    else {
      this.endpointSidecar.buf = endpoints;
      compact(batch, this.endpointSidecar);
    }
    if (batch.count === 0 || this.host.closed) return;
    if (this.tun.offloads !== null) coalesceForTun(batch, this.groTable, this.gro.tcp, this.gro.udp);
    let written = 0;
    try {
      written = this.tun.write(batch);
    } catch (error) {
      if (errorCode(error) === TUN_GONE_CODE) throw error;
      this.host.ioError(`writing to ${this.tun.name}`, error);
    }
    // Refused one by one (sizes[i] = -errno: the TUN set down, a packet it would not take) or never
    // written: counted, and the operator told once per kind.
    let refused = 0;
    for (let i = 0; i < written; i++) {
      if (batch.sizes[i]! >= 0) continue;
      this.drops.io++;
      refused = batch.sizes[i]!;
    }
    if (refused < 0) this.host.ioError(`writing to ${this.tun.name}`, packetError(refused));
    this.drops.io += batch.count - written;
  }

  /** After authentication: note liveness, follow the peer's path, consume keepalives, check the source. */
  private accept(peer: Peer, batch: PacketBatch, i: number, endpoints: Buffer | null, now: number): void {
    const buf = batch.bufs[i]!;
    const offset = batch.offsets[i]!;
    const size = batch.sizes[i]!;
    peer.lastRecv = now;
    peer.lastAuthenticated = now;
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
    if (!this.table.sourceAllowed(peer, buf, offset, size)) {
      peer.drops.badSource++;
      batch.sizes[i] = DROPPED;
      return;
    }
    peer.stats.vpnRxPackets++;
    peer.stats.vpnRxBytes += size;
  }
}

/**
 * The packet proved it comes from the peer: remember where it came from and which local address
 * it reached, so replies leave from that address (multihome) and follow a move (float). Only
 * authenticated packets get here, so a forged source address never moves a peer.
 */
function followPath(peer: Peer, endpoints: Buffer, i: number): void {
  if (samePath(peer.endpoint, 0, endpoints, i)) return;
  // A new remote address is a float, worth telling the control plane; a new local address
  // alone (multihome, a changed route) is not.
  if (!sameRemote(peer.endpoint, 0, endpoints, i)) peer.floated = true;
  copyEndpoint(peer.endpoint, 0, endpoints, i);
}
