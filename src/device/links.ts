/**
 * What carries each peer's packets, as the module's `sock` does: UDP sockets by local port,
 * shared by the peers on that port and closed with the last of them; TCP connections, one per
 * peer, either connected out or accepted on a listening port that peers wait on.
 */
import type { PacketBatch } from '../core/batch.js';
import { copyEndpoint, type EndpointInit } from '../core/endpoint.js';
import type { Clock, DatagramBind, Timer } from '../edge/edges.js';
import type { Peer, Transport } from '../peer/peer.js';
import { OvpnError } from './api.js';
import { type TcpCloseReason, TcpLink, TcpListener } from './tcp-link.js';
import { UdpPort } from './udp-port.js';

export type Link = UdpPort | TcpLink;

/** Where the links deliver what they read: the data path, and the interface for closed connections. */
export interface LinkHandlers {
  udpReadable(port: UdpPort): void;
  /** Packets of a TCP connection: of `peer`, or of one that no peer has taken yet (null). */
  streamPackets(peer: Peer | null, link: TcpLink, localPort: number, batch: PacketBatch): void;
  streamClosed(peer: Peer, reason: TcpCloseReason): void;
  /** A connection was closed to keep the number waiting for a peer bounded. */
  connectionRefused(message: string): void;
}

/** Connections that no peer has yet, per TCP port: a handshake's worth of clients at once. */
const MAX_PENDING = 64;
/** How long a connection may wait for a peer: a control plane's TLS handshake takes seconds. */
const PENDING_IDLE_MS = 60_000;

/** A local TCP port listening for peers: peers waiting for a connection, connections waiting for a peer. */
export interface TcpPort {
  readonly listener: TcpListener;
  users: number;
  readonly waiting: Peer[];
  readonly pending: TcpLink[];
}

export class Links {
  private readonly udp = new Map<number, UdpPort>();
  /** Peers using each UDP port: the socket closes with the last of them. */
  private readonly udpUsers = new Map<number, number>();
  private readonly tcpLinks = new Map<number, TcpLink>();
  private readonly tcpPorts = new Map<number, Promise<TcpPort>>();
  /** Accepted connections whose packets authenticated as their peer's. */
  private readonly provenLinks = new WeakSet<TcpLink>();
  /** Each connection that no peer has yet: its port, and when it will be closed. */
  private readonly pending = new Map<TcpLink, { port: TcpPort; timer: Timer }>();
  /** Waiting connections that have sent at least one whole packet (kept before silent ones). */
  private readonly spoke = new WeakSet<TcpLink>();

  constructor(
    private readonly openUdp: (port: number) => DatagramBind,
    private readonly batchSize: number,
    private readonly handlers: LinkHandlers,
    private readonly clock: Clock,
  ) {}

  linkOf(peer: Peer): Link | undefined {
    return peer.transport === 'udp' ? this.udp.get(peer.localPort) : this.tcpLinks.get(peer.id);
  }

  udpPorts(): IterableIterator<UdpPort> {
    return this.udp.values();
  }

  /** The UDP port, opened on first use, with one more user counted. */
  holdUdp(port: number): UdpPort {
    let udp = this.udp.get(port);
    if (udp === undefined) {
      udp = new UdpPort(this.openUdp(port), this.batchSize);
      const opened = udp;
      udp.bind.onReadable(() => this.handlers.udpReadable(opened));
      this.udp.set(udp.port, udp);
    }
    this.udpUsers.set(udp.port, (this.udpUsers.get(udp.port) ?? 0) + 1);
    return udp;
  }

  releaseUdp(port: number): void {
    const udp = this.udp.get(port);
    const users = (this.udpUsers.get(port) ?? 0) - 1;
    if (udp === undefined) return;
    if (users > 0) {
      this.udpUsers.set(port, users);
      return;
    }
    udp.close();
    this.udp.delete(port);
    this.udpUsers.delete(port);
  }

  /** A connection to a peer's address; refusals name the system's reason and the field. */
  async connect(remote: { address: string; port: number }): Promise<TcpLink> {
    try {
      return await TcpLink.connect(remote);
    } catch (error) {
      const code = (error as { code?: string }).code;
      const known = code === 'ECONNREFUSED' || code === 'ETIMEDOUT' ? code : 'EIO';
      throw new OvpnError(known, (error as Error).message, 'remote-port');
    }
  }

  /** The listening port, opened on first use and shared by the peers that wait on it. */
  listenTcp(port: number): Promise<TcpPort> {
    let opening = this.tcpPorts.get(port);
    if (opening === undefined) {
      opening = TcpListener.open(port).then(
        (listener) => {
          const tcpPort: TcpPort = { listener, users: 0, waiting: [], pending: [] };
          listener.onConnection = (link) => this.onConnection(tcpPort, link);
          return tcpPort;
        },
        (error: unknown) => {
          this.tcpPorts.delete(port);
          const code = (error as { code?: string }).code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EIO';
          throw new OvpnError(code, `cannot listen on TCP port ${port}: ${(error as Error).message}`, 'local-port');
        },
      );
      this.tcpPorts.set(port, opening);
    }
    return opening;
  }

  /** The peer takes the oldest connection waiting on the port, or waits for the next one. */
  awaitConnection(peer: Peer, tcpPort: TcpPort): void {
    tcpPort.users++;
    const link = tcpPort.pending[0];
    if (link === undefined) tcpPort.waiting.push(peer);
    else this.attachTcp(peer, link);
  }

  /**
   * Gives a connection to a peer. One that connected out is the peer's for good; one accepted on
   * a listening port must prove itself (see proven): until its packets authenticate, its end
   * sends the peer back to waiting instead of deleting it, so a stranger who connects first and
   * leaves cannot end a listening peer.
   */
  attachTcp(peer: Peer, link: TcpLink, provenAlready = false): void {
    const old = this.tcpLinks.get(peer.id);
    if (old !== undefined && old !== link) old.close();
    this.settle(link);
    this.tcpLinks.set(peer.id, link);
    if (provenAlready) this.provenLinks.add(link);
    copyEndpoint(peer.endpoint, 0, link.endpoint, 0);
    link.onPackets = (batch) => this.handlers.streamPackets(peer, link, peer.localPort, batch);
    link.onClose = (reason) => {
      if (this.tcpLinks.get(peer.id) === link) this.tcpLinks.delete(peer.id);
      if (this.provenLinks.has(link)) this.handlers.streamClosed(peer, reason);
      else this.waitAgain(peer);
    };
  }

  /** The connection carried packets that authenticate as `peer`'s: it is the peer's now. */
  proven(peer: Peer, link: TcpLink): void {
    if (this.tcpLinks.get(peer.id) !== link) this.attachTcp(peer, link);
    this.provenLinks.add(link);
  }

  /** An unproven connection of a listening peer ended: the peer waits for the next one. */
  private waitAgain(peer: Peer): void {
    const opening = this.tcpPorts.get(peer.localPort);
    if (opening === undefined || peer.deleted) return;
    void opening.then((tcpPort) => {
      if (peer.deleted || this.tcpLinks.has(peer.id) || tcpPort.waiting.includes(peer)) return;
      const link = tcpPort.pending[0];
      if (link === undefined) tcpPort.waiting.push(peer);
      else this.attachTcp(peer, link);
    });
  }

  /** A pending connection leaves the pending list (given to a peer, or closed). */
  private settle(link: TcpLink): void {
    const pending = this.pending.get(link);
    if (pending === undefined) return;
    this.pending.delete(link);
    pending.timer.cancel();
    const at = pending.port.pending.indexOf(link);
    if (at >= 0) pending.port.pending.splice(at, 1);
  }

  /**
   * A port held open with no peer on it (a server's): control packets from anyone on it go up,
   * and sendControl can answer them before their sender has a peer. Resolves to the port bound.
   */
  async listen(transport: Transport, port: number): Promise<number> {
    if (transport === 'udp') return this.holdUdp(port).port;
    const opening = this.listenTcp(port);
    const tcpPort = await opening;
    tcpPort.users++;
    // Port 0 picked a free one: known by that from now on, as peers and unlisten name it.
    if (port === 0 && this.tcpPorts.get(0) === opening) {
      this.tcpPorts.delete(0);
      this.tcpPorts.set(tcpPort.listener.port, opening);
    }
    return tcpPort.listener.port;
  }

  /** Lets go of a port taken by listen: it closes unless peers still use it. */
  unlisten(transport: Transport, port: number): void {
    if (transport === 'udp') {
      this.releaseUdp(port);
      return;
    }
    const opening = this.tcpPorts.get(port);
    void opening?.then((tcpPort) => this.dropTcpUser(port, opening, tcpPort));
  }

  /**
   * What carries a control packet to an address that has no peer: the UDP socket of the local
   * port, or the connection from that address accepted on the listening TCP port.
   */
  controlLink(transport: Transport, localPort: number, remote: EndpointInit): Link {
    const link = transport === 'udp' ? this.udp.get(localPort) : this.pendingFrom(localPort, remote);
    if (link !== undefined) return link;
    const message =
      transport === 'udp'
        ? `no UDP socket on local port ${localPort}: listen on it first`
        : `no connection from ${remote.address}:${remote.port} waits on TCP port ${localPort}`;
    throw new OvpnError('ENOENT', message, transport === 'udp' ? 'local-port' : 'remote-ipv4');
  }

  /** Closes the connection from `remote` that waits on TCP port `localPort` for a peer; false if none. */
  hangUp(localPort: number, remote: EndpointInit): boolean {
    const link = this.pendingFrom(localPort, remote);
    if (link === undefined) return false;
    this.settle(link);
    link.close();
    return true;
  }

  /** The connection from `remote` accepted on the listening port that no peer has yet. */
  pendingFrom(localPort: number, remote: EndpointInit): TcpLink | undefined {
    for (const [link, { port }] of this.pending)
      if (
        port.listener.port === localPort &&
        link.remote.address === remote.address &&
        link.remote.port === remote.port
      )
        return link;
    return undefined;
  }

  /**
   * A peer takes the pending connection its control plane has already talked to (and so
   * authenticated): it is the peer's for good, and the peer uses the listening port.
   */
  adopt(peer: Peer, link: TcpLink): void {
    const pending = this.pending.get(link);
    if (pending !== undefined) pending.port.users++;
    this.attachTcp(peer, link, true);
  }

  releaseTcp(peer: Peer): void {
    const link = this.tcpLinks.get(peer.id);
    if (link !== undefined) {
      this.tcpLinks.delete(peer.id);
      link.close();
    }
    if (peer.localPort === 0) return;
    const opening = this.tcpPorts.get(peer.localPort);
    if (opening === undefined) return;
    void opening.then((tcpPort) => {
      const at = tcpPort.waiting.indexOf(peer);
      if (at >= 0) tcpPort.waiting.splice(at, 1);
      this.dropTcpUser(peer.localPort, opening, tcpPort);
    });
  }

  release(peer: Peer): void {
    if (peer.transport === 'tcp') this.releaseTcp(peer);
    else this.releaseUdp(peer.localPort);
  }

  closeAll(): void {
    for (const udp of this.udp.values()) udp.close();
    this.udp.clear();
    this.udpUsers.clear();
    for (const opening of this.tcpPorts.values()) {
      void opening.then(
        (port) => this.closePort(port),
        () => undefined,
      );
    }
    this.tcpPorts.clear();
  }

  /**
   * A new connection goes to the first peer waiting on its port, or waits for one: at most
   * MAX_PENDING of them and for at most PENDING_IDLE_MS, so idle connections cannot pile up to
   * the fd limit. To make room, the oldest that has not yet sent a whole packet is closed (else
   * the oldest): a flood of idle or trickling connections then cannot push out a client that
   * opened with its first packet, as an OpenVPN client does (its reset).
   */
  private onConnection(tcpPort: TcpPort, link: TcpLink): void {
    const peer = tcpPort.waiting.shift();
    if (peer !== undefined) {
      this.attachTcp(peer, link);
      return;
    }
    // Control packets (a TLS handshake) may arrive before the control plane adds the peer.
    if (tcpPort.pending.length >= MAX_PENDING) {
      const victim = tcpPort.pending.find((l) => !this.spoke.has(l)) ?? tcpPort.pending[0]!;
      this.settle(victim);
      victim.close();
      this.handlers.connectionRefused(
        `more than ${MAX_PENDING} connections on TCP port ${tcpPort.listener.port} wait for a peer: the oldest was closed`,
      );
    }
    tcpPort.pending.push(link);
    const timer = this.clock.after(PENDING_IDLE_MS, () => {
      this.settle(link);
      link.close();
    });
    this.pending.set(link, { port: tcpPort, timer });
    link.onPackets = (batch) => {
      this.spoke.add(link);
      this.handlers.streamPackets(null, link, tcpPort.listener.port, batch);
    };
    link.onClose = () => this.settle(link);
  }

  /** One user fewer on a listening port: the last one closes it. */
  private dropTcpUser(port: number, opening: Promise<TcpPort>, tcpPort: TcpPort): void {
    if (--tcpPort.users > 0 || this.tcpPorts.get(port) !== opening) return;
    this.tcpPorts.delete(port);
    this.closePort(tcpPort);
  }

  private closePort(tcpPort: TcpPort): void {
    tcpPort.listener.close();
    for (const link of [...tcpPort.pending]) {
      this.settle(link);
      link.close();
    }
  }
}
