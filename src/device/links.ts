/**
 * What carries each peer's packets, as the module's `sock` does: UDP sockets by local port,
 * shared by the peers on that port and closed with the last of them; TCP connections, one per
 * peer, either connected out or accepted on a listening port that peers wait on.
 */
import type { PacketBatch } from '../core/batch.js';
import { copyEndpoint } from '../core/endpoint.js';
import type { DatagramBind } from '../edge/edges.js';
import type { Peer } from '../peer/peer.js';
import { OvpnError } from './api.js';
import { type TcpCloseReason, type TcpLink, TcpListener } from './tcp-link.js';
import { UdpPort } from './udp-port.js';

export type Link = UdpPort | TcpLink;

/** Where the links deliver what they read: the data path, and the interface for closed connections. */
export interface LinkHandlers {
  udpReadable(port: UdpPort): void;
  /** Packets of a TCP connection: of `peer`, or of one that no peer has taken yet (null). */
  streamPackets(peer: Peer | null, link: TcpLink, localPort: number, batch: PacketBatch): void;
  streamClosed(peer: Peer, reason: TcpCloseReason): void;
}

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

  constructor(
    private readonly openUdp: (port: number) => DatagramBind,
    private readonly batchSize: number,
    private readonly handlers: LinkHandlers,
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
    const link = tcpPort.pending.shift();
    if (link === undefined) tcpPort.waiting.push(peer);
    else this.attachTcp(peer, link);
  }

  attachTcp(peer: Peer, link: TcpLink): void {
    this.tcpLinks.set(peer.id, link);
    copyEndpoint(peer.endpoint, 0, link.endpoint, 0);
    link.onPackets = (batch) => this.handlers.streamPackets(peer, link, peer.localPort, batch);
    link.onClose = (reason) => this.handlers.streamClosed(peer, reason);
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
      if (--tcpPort.users > 0 || this.tcpPorts.get(peer.localPort) !== opening) return;
      this.tcpPorts.delete(peer.localPort);
      closeTcpPort(tcpPort);
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
        (port) => closeTcpPort(port),
        () => undefined,
      );
    }
    this.tcpPorts.clear();
  }

  /** A new connection goes to the first peer waiting on its port, or waits for one. */
  private onConnection(tcpPort: TcpPort, link: TcpLink): void {
    const peer = tcpPort.waiting.shift();
    if (peer !== undefined) {
      this.attachTcp(peer, link);
      return;
    }
    // Control packets (a TLS handshake) may arrive before the control plane adds the peer.
    tcpPort.pending.push(link);
    link.onPackets = (batch) => this.handlers.streamPackets(null, link, tcpPort.listener.port, batch);
    link.onClose = () => {
      const at = tcpPort.pending.indexOf(link);
      if (at >= 0) tcpPort.pending.splice(at, 1);
    };
  }
}

function closeTcpPort(tcpPort: TcpPort): void {
  tcpPort.listener.close();
  for (const link of tcpPort.pending.splice(0)) link.close();
}
