/**
 * The ovpn interface as a library object. Its methods mirror the netlink commands of the kernel
 * module (peer new/set/get/del, key new/get/swap/del) and its events mirror the notifications
 * (peer deleted, key swap needed, peer floated) plus the control packets handed up.
 *
 * A facade: values are checked by policy.ts, peers live in the PeerTable, sockets and
 * connections in Links, packets move through the DataPath; the TUN, sockets, routes and clock
 * come from `options.edges` (the kernel's by default).
 */

import { EventEmitter } from 'node:events';
import type { AeadBackend } from '../core/aead.js';
import { newDropCounters } from '../core/drops.js';
import { type EndpointInit, readEndpoint, writeEndpoint } from '../core/endpoint.js';
import { keySlotName } from '../core/key-slots.js';
import type { Clock, Timer, Tun } from '../edge/edges.js';
import { type DelPeerReasonName, Peer, type Transport } from '../peer/peer.js';
import {
  type InterfaceEvents,
  type InterfaceInfo,
  type InterfaceMode,
  type InterfaceOptions,
  type KeyConfigRequest,
  type KeyInfo,
  type KeySlotName,
  OvpnError,
  type PeerConfig,
  type PeerInfo,
} from './api.js';
import { ControlQueue } from './control-queue.js';
import { DataPath } from './data-path.js';
import { KeyReuse } from './key-reuse.js';
import { Links } from './links.js';
import { type InterfaceSettings, resolveOptions } from './options.js';
import type { DataPathHost } from './path-context.js';
import { peerInfo } from './peer-info.js';
import { PeerTable } from './peer-table.js';
import {
  checkKeyRequest,
  checkPacket,
  checkPeerId,
  checkPort,
  checkPrefix,
  checkUdpTransport,
  listeningPort,
  remoteOf,
  slotOf,
  udpPath,
} from './policy.js';
import { Strangers } from './strangers.js';
import type { TcpLink } from './tcp-link.js';
import { startKeepalives } from './timers.js';
import { Warnings } from './warnings.js';

export * from './api.js';
export { DEFAULT_GSO_MAX_SIZE, DEFAULT_MTU, DEFAULT_TXQUEUELEN } from './options.js';

export class OvpnInterface extends EventEmitter<InterfaceEvents> {
  /** Packets refused before any peer was known (per-peer drops are in each peer's info). */
  private readonly drops = newDropCounters();
  private readonly table: PeerTable;
  private readonly links: Links;
  private readonly dataPath: DataPath;
  private readonly clock: Clock;
  private readonly keepalives: Timer;
  private readonly controlPackets: ControlQueue;
  private readonly strangers: Strangers;
  private readonly keysUsed = new KeyReuse();
  private readonly warnings = new Warnings(
    () => this.name,
    (message) => this.warn(message),
  );
  private readonly routeWatch: { close(): void } | null = null;
  /** Where this interface's keys live: InterfaceOptions.crypto. */
  private readonly aead: AeadBackend;
  private closedReason: string | null = null;

  private constructor(
    private readonly tun: Tun,
    settings: InterfaceSettings,
  ) {
    super();
    this.clock = settings.edges.clock;
    this.strangers = new Strangers(this.clock, (message) => this.warn(message));
    this.controlPackets = new ControlQueue(
      settings.controlQueue,
      this.clock,
      (peerId, localPort, remote, data) =>
        this.emit('packet-ntf', { ifname: this.name, peerId, localPort, remote, data }),
      (count) => {
        this.drops.control += count;
      },
    );
    this.aead = settings.aead;
    this.table = new PeerTable(settings.mode);
    this.links = new Links(
      (port) => settings.edges.openUdp(port),
      settings.batchSize,
      {
        udpReadable: (udp) => this.dataPath.onUdpReadable(udp),
        streamPackets: (peer, link, localPort, batch) => this.dataPath.onStreamPackets(peer, link, localPort, batch),
        streamClosed: (peer, reason) => this.removePeer(peer, reason),
        connectionRefused: (message) => this.warn(message),
      },
      this.clock,
    );
    this.dataPath = new DataPath(tun, this.links, this.clock, this.dataPathHost(), this.table, this.drops, settings);
    this.dataPath.start();
    this.keepalives = startKeepalives(this.clock, {
      peers: () => this.table.values(),
      send: (peer) => this.dataPath.sendKeepalive(peer),
      expire: (peer) => this.removePeer(peer, 'EXPIRED'),
    });
    if (settings.mode === 'MP' && settings.followSystemRoutes) {
      this.routeWatch = settings.edges.watchRoutes(
        tun.name,
        (routes) => {
          this.table.replaceSystemRoutes(routes);
          this.emit('routes-changed', { ifname: this.name, routes: routes.length });
        },
        (error) => this.warn(`cannot follow the routing table: ${error.message}`),
      );
    }
  }

  /** Creates the TUN (or takes the one `options.edges` gives) and starts moving packets. */
  static create(options: InterfaceOptions): OvpnInterface {
    const settings = resolveOptions(options);
    let opened: ReturnType<typeof settings.edges.openTun>;
    try {
      opened = settings.edges.openTun(settings);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'EBUSY') {
        const message = `interface ${settings.name} already exists: delete it first or pick another name`;
        throw new OvpnError('EBUSY', message, 'ifname');
      }
      throw error;
    }
    const iface = new OvpnInterface(opened.tun, settings);
    for (const message of opened.warnings) setImmediate(() => iface.warn(message));
    return iface;
  }

  get name(): string {
    return this.tun.name;
  }

  get mode(): InterfaceMode {
    return this.table.mode;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  info(): InterfaceInfo {
    return {
      ifname: this.name,
      mode: this.mode,
      ifindex: this.tun.ifindex,
      mtu: this.tun.mtu,
      peers: this.table.size,
      drops: { ...this.drops },
      txQueue: this.dataPath.queueInfo(),
      controlQueue: this.controlPackets.length,
      unauthenticated: this.strangers.info,
    };
  }

  // ---- peers --------------------------------------------------------------------------------

  /** Adds a UDP peer (TCP peers: newTcpPeer). In P2P mode it replaces the peer there was. */
  newPeer(config: PeerConfig): void {
    this.assertOpen();
    checkUdpTransport(config);
    this.table.checkNewPeer(config);
    const { localPort, remote } = udpPath(config);
    // Held before addPeer, which in P2P mode releases the old peer's hold on this port.
    const udp = this.links.holdUdp(localPort);
    const peer = this.addPeer(config, udp.port, 'udp');
    writeEndpoint(peer.endpoint, 0, remote);
    this.table.moved(peer);
  }

  /**
   * Adds a TCP peer. With a remote address we connect to it, and resolve once connected, unless
   * a connection from that address waits on the listening local-port (see listen): the peer takes
   * that one. Without, we listen on local-port and the peer takes the next connection accepted
   * there (first come, first served); until then packets to it are dropped and counted.
   */
  async newTcpPeer(config: PeerConfig): Promise<void> {
    this.assertOpen();
    this.table.checkNewPeer(config);
    const remote = remoteOf(config);
    if (remote === null) {
      const port = listeningPort(config);
      const tcpPort = await this.links.listenTcp(port);
      this.assertOpen();
      this.table.checkNewPeer(config);
      this.links.awaitConnection(this.addPeer(config, port, 'tcp'), tcpPort);
      return;
    }
    // A server's control plane names the connection it accepted and talked to: the peer takes it.
    const accepted = config.localPort === undefined ? undefined : this.links.pendingFrom(config.localPort, remote);
    if (accepted !== undefined) {
      this.links.adopt(this.addPeer(config, config.localPort!, 'tcp'), accepted);
      return;
    }
    const link = await this.links.connect(remote);
    try {
      this.assertOpen();
      this.table.checkNewPeer(config);
    } catch (error) {
      link.close();
      throw error;
    }
    this.links.attachTcp(this.addPeer(config, 0, 'tcp'), link, true);
  }

  setPeer(config: PeerConfig): void {
    const peer = this.peerOrThrow(config.id);
    if (config.localPort !== undefined && config.localPort !== peer.localPort) {
      const message = 'socket cannot be modified: delete and re-add the peer to change local-port';
      throw new OvpnError('EINVAL', message, 'local-port');
    }
    if (config.transport !== undefined && config.transport !== peer.transport) {
      throw new OvpnError('EINVAL', 'transport cannot be modified: delete and re-add the peer', 'transport');
    }
    this.table.checkSettings(config, peer);
    const remote = remoteOf(config);
    if (remote !== null) {
      if (peer.transport === 'tcp') {
        const message = "the remote address of a TCP peer is its connection's: delete and re-add the peer to move it";
        throw new OvpnError('EINVAL', message, 'remote-ipv4');
      }
      writeEndpoint(peer.endpoint, 0, remote);
      this.table.moved(peer);
    }
    this.applyPeerConfig(peer, config);
  }

  getPeer(id: number): PeerInfo {
    return peerInfo(this.peerOrThrow(id), this.clock.now());
  }

  getPeers(): PeerInfo[] {
    const now = this.clock.now();
    return [...this.table.values()].map((peer) => peerInfo(peer, now));
  }

  delPeer(id: number): void {
    this.removePeer(this.peerOrThrow(id), 'USERSPACE');
  }

  /** Which peer a packet read from the TUN would go to, like `ip route get`; null: none. */
  peerForPacket(packet: Uint8Array): number | null {
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    return this.table.route(buf, 0, buf.length)?.id ?? null;
  }

  // ---- routes -------------------------------------------------------------------------------

  /** Sends a prefix ("10.1.0.0/16", "fd00::/64", or one address) to a peer, in MP mode. */
  addRoute(peerId: number, prefix: string): void {
    this.table.addRoute(this.peerOrThrow(peerId, 'peer-id'), checkPrefix(prefix));
  }

  delRoute(peerId: number, prefix: string): void {
    if (!this.table.removeRoute(this.peerOrThrow(peerId, 'peer-id'), checkPrefix(prefix))) {
      throw new OvpnError('ENOENT', `peer ${peerId} has no route ${prefix}`, 'prefix');
    }
  }

  getRoutes(peerId: number): string[] {
    return this.table.routesOf(this.peerOrThrow(peerId, 'peer-id'));
  }

  // ---- keys ---------------------------------------------------------------------------------

  newKey(request: KeyConfigRequest): void {
    const peer = this.peerOrThrow(request.peerId, 'peer-id');
    const { slot, cipher, encrypt, decrypt } = checkKeyRequest(request);
    try {
      peer.keys.install(slot, { keyId: request.keyId, cipher, encrypt, decrypt }, this.aead);
    } catch (error) {
      throw new OvpnError('EINVAL', (error as Error).message, 'encrypt-dir');
    }
    const earlier = this.keysUsed.use(peer.id, encrypt.key, encrypt.nonceTail);
    if (earlier.length > 0) this.warnings.keyReused(peer.id, request.keyId, earlier);
  }

  getKey(peerId: number, slotName: KeySlotName): KeyInfo {
    const peer = this.peerOrThrow(peerId, 'peer-id');
    const slot = slotOf(slotName);
    const key = peer.keys.get(slot);
    if (key === null) {
      throw new OvpnError('ENOENT', `peer ${peerId} has no key in the ${keySlotName(slot)} slot`, 'slot');
    }
    return { peerId, slot: keySlotName(slot), keyId: key.keyId, cipherAlg: key.info.alg };
  }

  swapKeys(peerId: number): void {
    this.peerOrThrow(peerId, 'peer-id').keys.swap();
  }

  /** Deletes one key slot, or both when none is given. */
  delKey(peerId: number, slotName?: KeySlotName): void {
    const peer = this.peerOrThrow(peerId, 'peer-id');
    peer.keys.delete(slotName === undefined ? undefined : slotOf(slotName));
  }

  // ---- control packets ----------------------------------------------------------------------

  /** Sends a control-plane packet to a peer through its data socket, untouched. */
  sendPacket(peerId: number, data: Uint8Array): void {
    this.dataPath.sendOne(this.peerOrThrow(peerId, 'peer-id'), checkPacket(data), false);
  }

  /**
   * Opens a local port with no peer, as a server does: control packets from senders that have
   * no peer come up as packet-ntf (peerId null) with their address, and sendControl answers
   * them. Resolves to the port bound (0 picks a free one). unlisten lets go of it.
   */
  async listen(transport: Transport, port: number): Promise<number> {
    this.assertOpen();
    return this.links.listen(transport, checkPort(port, 'local-port'));
  }

  unlisten(transport: Transport, port: number): void {
    if (!this.closed) this.links.unlisten(transport, port);
  }

  /** Sends a control packet, untouched, to an address that has no peer yet, from a port we listen on. */
  sendControl(transport: Transport, localPort: number, remote: EndpointInit, data: Uint8Array): void {
    this.assertOpen();
    const link = this.links.controlLink(transport, localPort, remote);
    this.dataPath.sendRaw(link, remote, checkPacket(data));
  }

  /**
   * Closes a TCP connection from `remote` on a listening port that no peer has taken, as a
   * server does when that client's handshake failed. Returns whether there was one.
   */
  hangUp(localPort: number, remote: EndpointInit): boolean {
    return !this.closed && this.links.hangUp(localPort, remote);
  }

  /** Sends the keepalive message to a peer now (the timer does this by itself). */
  sendKeepalive(peerId: number): void {
    this.dataPath.sendKeepalive(this.peerOrThrow(peerId, 'peer-id'));
  }

  // ---- lifetime -----------------------------------------------------------------------------

  /** Tears the interface down: every peer is deleted with reason TEARDOWN, the TUN vanishes. */
  destroy(reason = 'deleted by request'): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.keepalives.cancel();
    this.dataPath.stop();
    this.controlPackets.stop();
    this.routeWatch?.close();
    for (const peer of [...this.table.values()]) this.removePeer(peer, 'TEARDOWN');
    this.links.closeAll();
    this.tun.close();
    this.emit('closed', { ifname: this.name, reason });
  }

  /** `await using iface = OvpnInterface.create(...)`: destroyed when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.destroy('disposed');
  }

  // ---- internals ----------------------------------------------------------------------------

  private dataPathHost(): DataPathHost {
    const isClosed = () => this.closed;
    return {
      get closed(): boolean {
        return isClosed();
      },
      floated: (peer: Peer) => {
        this.table.moved(peer);
        this.emit('peer-float-ntf', { ifname: this.name, peerId: peer.id, remote: readEndpoint(peer.endpoint, 0) });
      },
      controlPackets: {
        push: (peerId, localPort, remote, data) => {
          this.strangers.control(peerId);
          this.controlPackets.push(peerId, localPort, remote, data);
        },
        pushFromSlot: (peerId, localPort, endpoints, slot, data) => {
          this.strangers.control(peerId);
          this.controlPackets.pushFromSlot(peerId, localPort, endpoints, slot, data);
        },
      },
      looped: (peer: Peer) => this.warnings.loop(peer),
      ioError: (what: string, error: unknown) => this.warnings.ioError(what, error),
      unassignedStream: (count: number) => this.strangers.unassignedTcp(count),
      streamProven: (peer: Peer, link: TcpLink) => this.links.proven(peer, link),
      tunGone: () => this.destroy(`interface ${this.name} was deleted`),
    };
  }

  private warn(message: string): void {
    this.emit('warning', { ifname: this.name, message });
  }

  /** Removes a peer and notifies: by request, on expiry, on transport errors, on teardown. */
  private removePeer(peer: Peer, reason: DelPeerReasonName): void {
    if (peer.deleted) return;
    peer.deleted = true;
    peer.keys.delete();
    this.table.remove(peer);
    this.links.release(peer);
    this.emit('peer-del-ntf', { ifname: this.name, peerId: peer.id, reason });
  }

  /** Creates and registers a peer whose config was checked; P2P: replaces the old one. */
  private addPeer(config: PeerConfig, localPort: number, transport: Transport): Peer {
    if (this.mode === 'P2P') for (const old of [...this.table.values()]) this.removePeer(old, 'TEARDOWN');
    const peer = new Peer(config.id, localPort, transport);
    this.applyPeerConfig(peer, config);
    const now = this.clock.now();
    peer.lastSent = now;
    peer.lastRecv = now;
    peer.keys.onSwapNeeded = (keyId) => this.emit('key-swap-ntf', { ifname: this.name, peerId: peer.id, keyId });
    this.table.add(peer);
    return peer;
  }

  /** Applies settings checked by the table's checks, so a half-applied config cannot happen. */
  private applyPeerConfig(peer: Peer, config: PeerConfig): void {
    this.table.setVpnAddresses(peer, config);
    if (config.keepaliveInterval !== undefined && config.keepaliveTimeout !== undefined) {
      peer.keepaliveInterval = config.keepaliveInterval;
      peer.keepaliveTimeout = config.keepaliveTimeout;
      const now = this.clock.now();
      peer.lastSent = now;
      peer.lastRecv = now;
    }
  }

  private peerOrThrow(id: number, field = 'id'): Peer {
    this.assertOpen();
    const peer = this.table.get(checkPeerId(id, field));
    if (peer === undefined) throw new OvpnError('ENOENT', `cannot find peer with id ${id}`, field);
    return peer;
  }

  private assertOpen(): void {
    if (this.closedReason !== null) throw new OvpnError('ENODEV', `interface is gone: ${this.closedReason}`, 'ifname');
  }
}
