/**
 * The data path of one interface: when the TUN or a UDP port is readable, move batches through
 * the transmit and receive paths, bounded per wakeup so that one busy direction cannot hold up
 * the other; and the single sends (keepalives, control packets) the rest of the interface asks
 * for.
 */
import type { PacketBatch } from '../core/batch.js';
import type { DropCounters } from '../core/drops.js';
import { type EndpointInit, newEndpoints, writeEndpoint } from '../core/endpoint.js';
import type { FlowQueueOptions } from '../core/flow-queue.js';
import { KEEPALIVE_MESSAGE } from '../core/wire.js';
import { type Clock, errorCode, TUN_GONE_CODE, type Tun } from '../edge/edges.js';
import type { Peer } from '../peer/peer.js';
import type { InterfaceInfo } from './api.js';
import type { Link } from './links.js';
import type { DataPathHost, LinkLookup, PeerLookup } from './path-context.js';
import { Receiver } from './receive.js';
import type { TcpLink } from './tcp-link.js';
import { Transmitter } from './transmit.js';
import type { UdpPort } from './udp-port.js';

/**
 * Batches handled per readiness callback before yielding to the event loop: ACKs and pings
 * going the other way wait behind whatever is handled in one go, and more than one batch
 * bought no throughput (docs/ARCHITECTURE.md).
 */
const BATCHES_PER_WAKEUP = 1;

/** TUN batches this big let the sockets be read before they are sealed (receiveFirst). */
const RECEIVE_FIRST_MIN_BATCH = 8;

export interface DataPathOptions {
  batchSize: number;
  gro: boolean;
  udpGro: boolean;
  flowQueue: FlowQueueOptions;
}

export class DataPath {
  private readonly tx: Transmitter;
  private readonly rx: Receiver;
  private tunRetry: NodeJS.Immediate | null = null;
  private stopped = false;
  private readonly rawEndpoint = newEndpoints(1);

  constructor(
    private readonly tun: Tun,
    private readonly links: LinkLookup,
    private readonly clock: Clock,
    private readonly host: DataPathHost,
    peers: PeerLookup,
    drops: DropCounters,
    options: DataPathOptions,
  ) {
    const offloads = tun.offloads !== null;
    this.tx = new Transmitter(
      tun,
      peers,
      links,
      drops,
      (peer) => host.looped(peer),
      (what, error) => host.ioError(what, error),
      { ...options, offloads },
    );
    this.rx = new Receiver(tun, peers, drops, host, {
      tcp: offloads && options.gro,
      udp: offloads && options.udpGro && tun.usoWrite,
    });
  }

  start(): void {
    this.tun.onReadable(() => this.onTunReadable());
  }

  stop(): void {
    this.stopped = true;
    if (this.tunRetry !== null) clearImmediate(this.tunRetry);
    this.tunRetry = null;
  }

  /** A UDP port is readable (or may still hold datagrams taken in with GRO). */
  onUdpReadable(udp: UdpPort): void {
    // try/catch here rather than guard(): a closure per wakeup is garbage per idle packet.
    try {
      this.receiveFrom(udp);
    } catch (error) {
      this.failed(error);
    }
  }

  onStreamPackets(peer: Peer | null, link: TcpLink, localPort: number, batch: PacketBatch): void {
    if (this.live) this.guard(() => this.rx.fromStream(peer, link, localPort, batch, this.clock.now()));
  }

  sendOne(peer: Peer, data: Uint8Array, seal: boolean): void {
    this.guard(() => this.tx.sendOne(peer, data, seal, this.clock.now()));
  }

  /** A control packet to `remote` through a link that no peer may have yet (a server's answer). */
  sendRaw(link: Link, remote: EndpointInit, data: Uint8Array): void {
    writeEndpoint(this.rawEndpoint, 0, remote);
    // A packet the socket refuses is lost like any datagram: the control plane retransmits.
    this.guard(() => this.tx.sendRaw(link, this.rawEndpoint, data));
  }

  /**
   * Sends the keepalive message. The attempt counts as sending even when it failed (no key yet,
   * a socket refusing): the next one is due an interval later, not at the next tick.
   */
  sendKeepalive(peer: Peer): void {
    this.sendOne(peer, KEEPALIVE_MESSAGE, true);
    peer.lastSent = this.clock.now();
  }

  queueInfo(): InterfaceInfo['txQueue'] {
    return this.tx.queueInfo();
  }

  private get live(): boolean {
    return !this.stopped && !this.host.closed;
  }

  private onTunReadable(): void {
    this.tunRetry = null;
    if (!this.live) return;
    try {
      for (let round = 0; round < BATCHES_PER_WAKEUP && this.live; round++) {
        if (this.tx.fromTun(this.clock.now(), this.receiveFirst) === 0) break;
      }
    } catch (error) {
      this.failed(error);
    }
    // Packets already taken from the TUN into the queue are not announced by the fd again.
    if (this.tx.pending && this.live) this.tunRetry = setImmediate(() => this.onTunReadable());
  }

  /**
   * Replies and ACKs go before a big TUN batch: what the sockets hold is small next to it, and
   * would otherwise wait for the whole batch to be sealed and sent. A few packets are sent at
   * once instead, since looking costs a receive call per socket, which an idle tunnel pays on
   * every packet. Each socket on its own: one in trouble must not hold up the others or the TUN.
   */
  private readonly receiveFirst = (read: number): void => {
    if (read < RECEIVE_FIRST_MIN_BATCH) return;
    for (const udp of this.links.udpPorts()) this.onUdpReadable(udp);
  };

  private receiveFrom(udp: UdpPort): void {
    // Also reached from setImmediate below, by which time the port may have been closed.
    for (let round = 0; round < BATCHES_PER_WAKEUP; round++) {
      if (!this.live || udp.closed) return;
      const received = udp.receive();
      if (received === 0) return;
      this.rx.fromUdp(udp, this.clock.now());
      if (received < udp.capacity) return;
    }
    // Full batches every round: yield to the event loop, but come back even if the socket looks
    // empty, since with GRO the rest of a coalesced datagram may be waiting inside the shim.
    setImmediate(() => this.onUdpReadable(udp));
  }

  /**
   * Nothing a peer or an admin does may end the process but deleting the interface. The TUN
   * vanishing (`ip link del`) shows as an error on any read or write: the interface ends. Any
   * other error of a device or socket (the TUN set down, a socket error) costs what was in hand
   * and is reported; the next wakeup tries again.
   */
  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.failed(error);
    }
  }

  private failed(error: unknown): void {
    if (errorCode(error) === TUN_GONE_CODE) this.host.tunGone();
    else this.host.ioError('moving packets', error);
  }
}
