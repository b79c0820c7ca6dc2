/**
 * The ovpn interface as a library object: a TUN device, the UDP sockets of its peers, the peer
 * table and the two data paths between them. Its methods mirror the netlink commands of the
 * kernel module (peer new/set/get/del, key new/get/swap/del) and its events mirror the
 * notifications (peer deleted, key swap needed) plus the control packets handed up.
 */
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { MAX_BATCH, MAX_PACKET, newBatch, type PacketBatch, resetOffsets } from '../core/batch.js';
import { type CipherAlg, isCipherAlg } from '../core/cipher.js';
import { type DropCounters, newDropCounters } from '../core/drops.js';
import { DEFAULT_FLOW_QUEUE, type FlowQueueOptions, flowQueueProblem } from '../core/flow-queue.js';
import { GroTable, TUN_OFFLOADS } from '../core/gso.js';
import { KeySlot, keySlotName } from '../core/key-slots.js';
import { MAX_KEY_ID, MAX_PEER_ID } from '../core/wire.js';
import { envInteger, envSwitch } from '../edge/env.js';
import { isNativeError } from '../edge/native.js';
import { TUN_GONE_CODE, TunDevice } from '../edge/tun.js';
import { copyEndpoint, type Endpoint, newEndpoints, readEndpoint, writeEndpoint } from '../edge/udp.js';
import { type DelPeerReasonName, Peer, type PeerStats, type Transport } from '../peer/peer.js';
import { PeerRouter } from '../peer/peer-router.js';
import { parseIpBytes, vpnAddressProblem } from '../peer/vpn-address.js';
import {
  BATCHES_PER_WAKEUP,
  DATA_PATH_BATCH,
  receiveFrom,
  receiveStream,
  sendKeepalive,
  sendOne,
  transmit,
} from './data-path.js';
import { watchSystemRoutes } from './system-routes.js';
import { TcpLink, TcpListener } from './tcp-link.js';
import { runKeepalives } from './timers.js';
import { TunReader } from './tun-reader.js';
import { UdpSocket } from './udp-socket.js';

export type InterfaceMode = 'P2P' | 'MP';

/**
 * Default MTU: a full inner packet plus our 72 bytes (IPv6 40, UDP 8, DATA_V2 header, packet-id
 * and tag 24) fits a 1500-byte link, so outer packets never fragment. Same as ovpn-dco.
 */
export const DEFAULT_MTU = 1428;

export interface InterfaceOptions {
  name: string;
  mode?: InterfaceMode;
  mtu?: number;
  /**
   * MP mode: follow the kernel's routes through this interface, so that `ip route add X via
   * <peer's VPN address> dev tun0` sends X to that peer, as with the kernel module. Default true.
   */
  followSystemRoutes?: boolean;
  /**
   * Length of the TUN's transmit queue: the packets the kernel holds for us to read. Each wakeup
   * drains it into the flow queue (see flowQueue), so it only absorbs what arrives in between;
   * too short (10) and it drops pings. Default `OVPN_TUN_TXQUEUELEN` from the environment, else
   * DEFAULT_TXQUEUELEN.
   */
  txqueuelen?: number;
  /**
   * Open the TUN with virtio_net_hdr and accept checksum and TCP segmentation offload
   * (TUN_F_CSUM|TSO4|TSO6): the kernel hands us TCP super-packets (see gsoMaxSize) and we
   * segment them, and TCP segments we write are merged (gro). Falls back to a plain TUN when the
   * kernel refuses. Default: `OVPN_TUN_OFFLOAD` (0/off/no/false turn it off), else on: together with UDP
   * GSO/GRO it took TCP through the tunnel from ~1.1x to ~1.4-1.6x OpenVPN's, at ~15% less CPU
   * per GB (bench/results/tunnel.json).
   */
  offload?: boolean;
  /**
   * With offload: the largest super-packet the kernel may hand us, in bytes. Default
   * `OVPN_TUN_GSO_MAX_SIZE` from the environment, else DEFAULT_GSO_MAX_SIZE.
   */
  gsoMaxSize?: number;
  /**
   * With offload: merge consecutive segments of a TCP flow written to the TUN into one
   * super-packet (GRO). Default: `OVPN_TUN_GRO` (0/off/no/false turn it off), else on.
   */
  gro?: boolean;
  /**
   * The queue packets read from the TUN wait in before they are sealed: sparse flows first; bulk
   * flows through CoDel and a byte limit (core/flow-queue.ts). Defaults DEFAULT_FLOW_QUEUE, or
   * from the environment: `OVPN_TX_QUEUE_SLOTS`, `OVPN_TX_QUEUE_BULK_BYTES`,
   * `OVPN_CODEL_TARGET_US`, `OVPN_CODEL_INTERVAL_US`.
   */
  flowQueue?: Partial<FlowQueueOptions>;
}

function flowQueueOptions(given: Partial<FlowQueueOptions> = {}): FlowQueueOptions {
  const d = DEFAULT_FLOW_QUEUE;
  return {
    slots: given.slots ?? envInteger('OVPN_TX_QUEUE_SLOTS', d.slots, 1, 65535),
    bulkBytes: given.bulkBytes ?? envInteger('OVPN_TX_QUEUE_BULK_BYTES', d.bulkBytes, 1, 2 ** 31 - 1),
    targetMs: given.targetMs ?? envInteger('OVPN_CODEL_TARGET_US', d.targetMs * 1000, 1, 10_000_000) / 1000,
    intervalMs: given.intervalMs ?? envInteger('OVPN_CODEL_INTERVAL_US', d.intervalMs * 1000, 1, 10_000_000) / 1000,
  };
}

/**
 * With offloads, the largest super-packet the kernel hands the TUN. It is the unit the flow
 * queue holds and drops, so it must stay well below its bulk byte limit (64 KiB). Before the
 * flow queue, it also set how much the TUN's ring held: 64 KiB super-packets made ping RTT under
 * load 5x OpenVPN's (bench/results/tun-offload.md).
 */
export const DEFAULT_GSO_MAX_SIZE = 16384;

/**
 * Caps the TUN's super-packets (netlink IFLA_GSO_MAX_SIZE; no ioctl exists, so through ip).
 * Returns why it failed, or null: the interface works either way, with longer queues.
 */
function limitSuperPackets(name: string, bytes: number): string | null {
  try {
    execFileSync('ip', ['link', 'set', 'dev', name, 'gso_max_size', String(bytes)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return null;
  } catch (error) {
    return `cannot set gso_max_size ${bytes} on ${name} (${(error as Error).message.split('\n')[0]}): super-packets stay at 64 KiB`;
  }
}

/** OpenVPN 2.6's --txqueuelen default on Linux (the kernel's default for a TUN is 500). */
export const DEFAULT_TXQUEUELEN = 100;

export interface PeerConfig {
  id: number;
  remoteIpv4?: string;
  remoteIpv6?: string;
  remotePort?: number;
  localIpv4?: string;
  localIpv6?: string;
  /**
   * Local port. UDP: peers with the same port share one socket. TCP: the port to listen on
   * for the peer's connection (when no remote address is given).
   */
  localPort?: number;
  /** 'udp' (default) or 'tcp'; TCP peers are added with newTcpPeer. */
  transport?: Transport;
  vpnIpv4?: string;
  vpnIpv6?: string;
  keepaliveInterval?: number;
  keepaliveTimeout?: number;
}

/** A peer as peer-get reports it: its configuration, where it is now, and its counters. */
export interface PeerInfo
  extends PeerStats,
    Omit<PeerConfig, 'localPort' | 'keepaliveInterval' | 'keepaliveTimeout' | 'transport'> {
  localPort: number;
  transport: Transport;
  keepaliveInterval: number;
  keepaliveTimeout: number;
  drops: DropCounters;
}

export type KeySlotName = 'primary' | 'secondary';

export interface KeyDirConfig {
  cipherKey: Uint8Array;
  nonceTail: Uint8Array;
}

export interface KeyConfigRequest {
  peerId: number;
  slot: KeySlotName;
  keyId: number;
  /** Our cipher names, or the netlink ones ('aes-gcm' takes its size from the key length). */
  cipherAlg: CipherAlg | 'aes-gcm' | 'chacha20-poly1305' | 'none';
  encryptDir: KeyDirConfig;
  decryptDir: KeyDirConfig;
}

export interface KeyInfo {
  peerId: number;
  slot: KeySlotName;
  keyId: number;
  cipherAlg: CipherAlg;
}

export interface PeerDelEvent {
  ifname: string;
  peerId: number;
  reason: DelPeerReasonName;
}

export interface KeySwapEvent {
  ifname: string;
  peerId: number;
  keyId: number;
}

export interface PeerFloatEvent {
  ifname: string;
  peerId: number;
  /** Where the peer is now, and the local address it reached. */
  remote: Endpoint;
}

export interface PacketEvent {
  ifname: string;
  /** Peer whose transport address sent it, when known. */
  peerId: number | null;
  localPort: number;
  remote: Endpoint;
  data: Buffer;
}

export interface InterfaceEvents {
  'peer-del-ntf': [PeerDelEvent];
  'key-swap-ntf': [KeySwapEvent];
  'peer-float-ntf': [PeerFloatEvent];
  'packet-ntf': [PacketEvent];
  /** MP mode: the kernel's routes through this interface changed and were taken over. */
  'routes-changed': [{ ifname: string; routes: number }];
  /** Something went wrong that costs a feature but not the interface (e.g. following routes). */
  warning: [{ ifname: string; message: string }];
  /** The interface is gone (destroyed, or deleted from outside with `ip link del`). */
  closed: [{ ifname: string; reason: string }];
}

/** An error a caller can fix: names the field at fault and says what is expected. */
export type OvpnErrorCode =
  | 'EINVAL'
  | 'ENOENT'
  | 'EEXIST'
  | 'EBUSY'
  | 'ENODEV'
  | 'ECONNREFUSED'
  | 'ETIMEDOUT'
  | 'EADDRINUSE'
  | 'EIO';

export class OvpnError extends Error {
  constructor(
    readonly code: OvpnErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'OvpnError';
  }
}

const KEEPALIVE_TICK_MS = 250;

/** A local TCP port listening for peers: peers waiting for a connection, connections waiting for a peer. */
interface TcpPort {
  readonly listener: TcpListener;
  users: number;
  readonly waiting: Peer[];
  readonly pending: TcpLink[];
}

export class OvpnInterface extends EventEmitter<InterfaceEvents> {
  readonly mode: InterfaceMode;
  readonly drops: DropCounters = newDropCounters();
  readonly peers = new Map<number, Peer>();
  /** Multi-peer transmit routing: VPN addresses, attached routes, the kernel's routes. */
  readonly router = new PeerRouter<Peer>();
  /** Reused by the transmit path: packets read from the TUN, and their endpoint slots. */
  readonly txBatch: PacketBatch = newBatch(DATA_PATH_BATCH);
  readonly txEndpoints: Buffer = newEndpoints(MAX_BATCH);
  readonly txPeers: (Peer | null)[] = new Array<Peer | null>(MAX_BATCH).fill(null);
  readonly rxPeers: (Peer | null)[] = new Array<Peer | null>(MAX_BATCH).fill(null);
  /** Drains the TUN into the flow queue and fills txBatch from it (cutting super-packets). */
  readonly tunReader: TunReader;
  /** With TUN offloads: whether writes to the TUN merge TCP segments, and the table for it. */
  readonly gro: boolean;
  readonly groTable = new GroTable();
  private tunRetry: NodeJS.Immediate | null = null;
  private readonly sockets = new Map<number, UdpSocket>();
  private readonly tcpLinks = new Map<number, TcpLink>();
  private readonly tcpPorts = new Map<number, Promise<TcpPort>>();
  private readonly timer: NodeJS.Timeout;
  private readonly systemRoutes: { close(): void } | null = null;
  private p2p: Peer | null = null;
  private closedReason: string | null = null;

  private constructor(
    readonly tun: TunDevice,
    mode: InterfaceMode,
    followSystemRoutes: boolean,
    gro: boolean,
    queueOptions: FlowQueueOptions,
  ) {
    super();
    this.mode = mode;
    this.tunReader = new TunReader(tun, this.drops, tun.offloads !== null, queueOptions);
    this.gro = tun.offloads !== null && gro;
    this.tun.onReadable(() => this.onTunReadable());
    this.timer = setInterval(() => runKeepalives(this, performance.now()), KEEPALIVE_TICK_MS);
    if (mode === 'MP' && followSystemRoutes) {
      this.systemRoutes = watchSystemRoutes(
        tun.name,
        (routes) => {
          this.router.replaceSystemRoutes(routes);
          this.emit('routes-changed', { ifname: this.name, routes: routes.length });
        },
        (error) =>
          this.emit('warning', { ifname: this.name, message: `cannot follow the routing table: ${error.message}` }),
      );
    }
  }

  get name(): string {
    return this.tun.name;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  static create(options: InterfaceOptions): OvpnInterface {
    const mode = options.mode ?? 'P2P';
    if (mode !== 'P2P' && mode !== 'MP')
      throw new OvpnError('EINVAL', `mode must be P2P or MP, got ${String(mode)}`, 'mode');
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(options.name)) {
      throw new OvpnError(
        'EINVAL',
        `interface name must be 1-15 letters, digits, '_', '.' or '-', got ${JSON.stringify(options.name)}`,
        'ifname',
      );
    }
    let tun: TunDevice;
    let gsoProblem: string | null = null;
    try {
      tun = TunDevice.open(
        options.name,
        (options.offload ?? envSwitch('OVPN_TUN_OFFLOAD', true)) ? TUN_OFFLOADS : undefined,
      );
    } catch (error) {
      if (isNativeError(error, 'EBUSY'))
        throw new OvpnError(
          'EBUSY',
          `interface ${options.name} already exists: delete it first or pick another name`,
          'ifname',
        );
      throw error;
    }
    try {
      tun.mtu = options.mtu ?? DEFAULT_MTU;
      tun.txqueuelen = options.txqueuelen ?? envInteger('OVPN_TUN_TXQUEUELEN', DEFAULT_TXQUEUELEN);
      if (tun.offloads !== null)
        gsoProblem = limitSuperPackets(
          tun.name,
          options.gsoMaxSize ?? envInteger('OVPN_TUN_GSO_MAX_SIZE', DEFAULT_GSO_MAX_SIZE),
        );
      tun.up();
    } catch (error) {
      tun.close();
      throw error;
    }
    const queue = flowQueueOptions(options.flowQueue);
    const queueProblem = flowQueueProblem(queue);
    if (queueProblem !== null) {
      tun.close();
      throw new OvpnError(
        'EINVAL',
        `flowQueue: ${queueProblem} (or set OVPN_TX_QUEUE_SLOTS, OVPN_TX_QUEUE_BULK_BYTES, OVPN_CODEL_TARGET_US, OVPN_CODEL_INTERVAL_US)`,
        'flowQueue',
      );
    }
    const iface = new OvpnInterface(
      tun,
      mode,
      options.followSystemRoutes ?? true,
      options.gro ?? envSwitch('OVPN_TUN_GRO', true),
      queue,
    );
    const problems = [
      tun.offloadError === null ? null : `TUN offloads refused, running without: ${tun.offloadError}`,
      gsoProblem,
    ];
    for (const message of problems)
      if (message !== null) setImmediate(() => iface.emit('warning', { ifname: iface.name, message }));
    return iface;
  }

  // ---- peers --------------------------------------------------------------------------------

  /** Adds a UDP peer (TCP peers: newTcpPeer). In P2P mode it replaces the peer there was. */
  newPeer(config: PeerConfig): void {
    this.assertOpen();
    if (config.transport !== undefined && config.transport !== 'udp') {
      throw new OvpnError(
        'EINVAL',
        `newPeer adds UDP peers, got transport ${JSON.stringify(config.transport)}: use newTcpPeer for TCP`,
        'transport',
      );
    }
    this.checkNewPeer(config);
    const localPort = checkPort(config.localPort, 'local-port');
    const remote = remoteOf(config);
    if (remote === null)
      throw new OvpnError(
        'EINVAL',
        'missing remote IP address for UDP socket: set remote-ipv4 or remote-ipv6 and remote-port',
        'remote-ipv4',
      );
    const socket = this.socketFor(localPort);
    // Counted before addPeer, which in P2P mode releases the old peer's hold on this socket.
    socket.users++;
    const peer = this.addPeer(config, socket.port, 'udp');
    writeEndpoint(peer.endpoint, 0, remote);
  }

  /**
   * Adds a TCP peer. With a remote address we connect to it, and resolve once connected. Without,
   * we listen on local-port and the peer takes the next connection accepted there (first come,
   * first served); until then packets to it are dropped and counted.
   */
  async newTcpPeer(config: PeerConfig): Promise<void> {
    this.assertOpen();
    this.checkNewPeer(config);
    const remote = remoteOf(config);
    if (remote === null) {
      const port = checkPort(config.localPort, 'local-port');
      if (port === 0)
        throw new OvpnError(
          'EINVAL',
          'a listening TCP peer needs local-port, the port to accept its connection on',
          'local-port',
        );
      const tcpPort = await this.tcpPortFor(port);
      this.assertOpen();
      this.checkNewPeer(config);
      const peer = this.addPeer(config, port, 'tcp');
      tcpPort.users++;
      const link = tcpPort.pending.shift();
      if (link === undefined) tcpPort.waiting.push(peer);
      else this.attachTcp(peer, link);
      return;
    }
    let link: TcpLink;
    try {
      link = await TcpLink.connect(remote);
    } catch (error) {
      throw new OvpnError(connectErrorCode(error), (error as Error).message, 'remote-port');
    }
    try {
      this.assertOpen();
      this.checkNewPeer(config);
    } catch (error) {
      link.close();
      throw error;
    }
    this.attachTcp(this.addPeer(config, 0, 'tcp'), link);
  }

  setPeer(config: PeerConfig): void {
    const peer = this.peerOrThrow(config.id);
    if (config.localPort !== undefined && config.localPort !== peer.localPort) {
      throw new OvpnError(
        'EINVAL',
        'socket cannot be modified: delete and re-add the peer to change local-port',
        'local-port',
      );
    }
    if (config.transport !== undefined && config.transport !== peer.transport) {
      throw new OvpnError('EINVAL', 'transport cannot be modified: delete and re-add the peer', 'transport');
    }
    this.checkPeerSettings(config, peer);
    const remote = remoteOf(config);
    if (remote !== null) {
      if (peer.transport === 'tcp')
        throw new OvpnError(
          'EINVAL',
          "the remote address of a TCP peer is its connection's: delete and re-add the peer to move it",
          'remote-ipv4',
        );
      writeEndpoint(peer.endpoint, 0, remote);
    }
    this.applyPeerConfig(peer, config);
  }

  getPeer(id: number): PeerInfo {
    return peerInfo(this.peerOrThrow(id));
  }

  getPeers(): PeerInfo[] {
    return [...this.peers.values()].map(peerInfo);
  }

  delPeer(id: number): void {
    this.removePeer(this.peerOrThrow(id), 'USERSPACE');
  }

  /** Removes a peer and notifies; the data paths call this for EXPIRED and transport errors. */
  removePeer(peer: Peer, reason: DelPeerReasonName): void {
    if (peer.deleted) return;
    peer.deleted = true;
    peer.keys.delete();
    this.peers.delete(peer.id);
    this.router.removePeer(peer);
    if (this.p2p === peer) this.p2p = null;
    if (peer.transport === 'tcp') this.releaseTcp(peer);
    else this.releaseUdp(peer);
    this.emit('peer-del-ntf', { ifname: this.name, peerId: peer.id, reason });
  }

  // ---- routes ---------------------------------------------------------------------------------

  /** Sends a prefix ("10.1.0.0/16", "fd00::/64", or one address) to a peer, in MP mode. */
  addRoute(peerId: number, prefix: string): void {
    const peer = this.peerOrThrow(peerId, 'peer-id');
    const route = parsePrefix(prefix);
    this.router.addPeerRoute(peer, route.family, route.bytes, route.prefixLen);
  }

  delRoute(peerId: number, prefix: string): void {
    const peer = this.peerOrThrow(peerId, 'peer-id');
    const route = parsePrefix(prefix);
    if (!this.router.removePeerRoute(peer, route.family, route.bytes, route.prefixLen)) {
      throw new OvpnError('ENOENT', `peer ${peerId} has no route ${prefix}`, 'prefix');
    }
  }

  getRoutes(peerId: number): string[] {
    return this.router.peerRoutes(this.peerOrThrow(peerId, 'peer-id')).map((r) => `${r.address}/${r.prefixLen}`);
  }

  // ---- keys ---------------------------------------------------------------------------------

  newKey(request: KeyConfigRequest): void {
    const peer = this.peerOrThrow(request.peerId, 'peer-id');
    const slot = slotOf(request.slot);
    if (!Number.isInteger(request.keyId) || request.keyId < 0 || request.keyId > MAX_KEY_ID) {
      throw new OvpnError(
        'EINVAL',
        `key-id must be an integer from 0 to ${MAX_KEY_ID}, got ${String(request.keyId)}`,
        'key-id',
      );
    }
    const cipher = resolveCipher(request.cipherAlg, request.encryptDir?.cipherKey?.length ?? 0);
    const field = (dir: string, config: KeyDirConfig | undefined) => {
      if (config === undefined || config.cipherKey === undefined || config.nonceTail === undefined) {
        throw new OvpnError('EINVAL', `${dir} needs cipher-key and nonce-tail`, dir);
      }
      return { key: config.cipherKey, nonceTail: config.nonceTail };
    };
    const encrypt = field('encrypt-dir', request.encryptDir);
    const decrypt = field('decrypt-dir', request.decryptDir);
    try {
      peer.keys.install(slot, { keyId: request.keyId, cipher, encrypt, decrypt });
    } catch (error) {
      throw new OvpnError('EINVAL', (error as Error).message, 'encrypt-dir');
    }
  }

  getKey(peerId: number, slotName: KeySlotName): KeyInfo {
    const peer = this.peerOrThrow(peerId, 'peer-id');
    const slot = slotOf(slotName);
    const key = peer.keys.get(slot);
    if (key === null)
      throw new OvpnError('ENOENT', `peer ${peerId} has no key in the ${keySlotName(slot)} slot`, 'slot');
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
    const peer = this.peerOrThrow(peerId, 'peer-id');
    if (!(data instanceof Uint8Array) || data.length === 0 || data.length > MAX_PACKET) {
      throw new OvpnError('EINVAL', `packet must be 1 to ${MAX_PACKET} bytes`, 'data');
    }
    sendOne(this, peer, data, false, performance.now());
  }

  /** Sends the keepalive message to a peer now (the timer does this by itself). */
  sendKeepalive(peerId: number): void {
    sendKeepalive(this, this.peerOrThrow(peerId, 'peer-id'), performance.now());
  }

  // ---- lifetime -----------------------------------------------------------------------------

  /** Tears the interface down: every peer is deleted with reason TEARDOWN, the TUN vanishes. */
  destroy(reason = 'deleted by request'): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    clearInterval(this.timer);
    if (this.tunRetry !== null) clearImmediate(this.tunRetry);
    this.systemRoutes?.close();
    for (const peer of [...this.peers.values()]) this.removePeer(peer, 'TEARDOWN');
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
    for (const opening of this.tcpPorts.values())
      void opening.then(
        (port) => closeTcpPort(port),
        () => undefined,
      );
    this.tcpPorts.clear();
    this.tun.close();
    this.emit('closed', { ifname: this.name, reason });
  }

  /** What carries a peer's packets: its UDP socket or TCP stream (none while a TCP peer waits). */
  linkOf(peer: Peer): UdpSocket | TcpLink | undefined {
    return peer.transport === 'udp' ? this.sockets.get(peer.localPort) : this.tcpLinks.get(peer.id);
  }

  /** Which peer a packet read from the TUN goes to: P2P the one peer, MP by address and routes. */
  routePacket(buf: Buffer, offset: number, size: number): Peer | null {
    return this.mode === 'P2P' ? this.p2p : this.router.route(buf, offset, size);
  }

  /** Called by the receive path after a peer was seen at a new remote address. */
  notifyFloat(peer: Peer): void {
    this.emit('peer-float-ntf', { ifname: this.name, peerId: peer.id, remote: readEndpoint(peer.endpoint, 0) });
  }

  // ---- internals ----------------------------------------------------------------------------

  private onTunReadable(): void {
    this.tunRetry = null;
    if (this.closed) return;
    try {
      // Replies and ACKs first: whatever the sockets hold is small next to a TUN batch, and a
      // packet there would otherwise wait for the batch to be sealed and sent (~0.2 ms less
      // ping RTT under TCP load in the tunnel benchmark).
      for (const socket of this.sockets.values()) receiveFrom(this, socket, performance.now());
      if (this.closed) return;
      // Bounded so a flood from the TUN cannot starve the receive side of the event loop.
      const reader = this.tunReader;
      for (let round = 0; round < BATCHES_PER_WAKEUP; round++) {
        resetOffsets(this.txBatch);
        const now = performance.now();
        if (reader.read(this.txBatch, now) === 0) break;
        transmit(this, this.txBatch, now);
        if (this.closed) return;
      }
      // Packets already taken from the TUN into the queue are not announced by the fd again.
      if (reader.pending) this.tunRetry = setImmediate(() => this.onTunReadable());
    } catch (error) {
      if (isNativeError(error, TUN_GONE_CODE)) this.destroy(`interface ${this.name} was deleted`);
      else throw error;
    }
  }

  /** Checks what a new peer needs before anything changes: id free (MP), VPN addresses. */
  private checkNewPeer(config: PeerConfig): void {
    const id = checkPeerId(config.id, 'id');
    if (this.mode === 'MP' && this.peers.has(id))
      throw new OvpnError('EEXIST', `peer ${id} already exists: delete it first or use another id`, 'id');
    if (this.mode === 'MP' && config.vpnIpv4 === undefined && config.vpnIpv6 === undefined) {
      throw new OvpnError('EINVAL', 'VPN IP must be provided in MP mode: set vpn-ipv4 or vpn-ipv6', 'vpn-ipv4');
    }
    // In P2P mode the new peer replaces the old one, so the old one's addresses are free.
    this.checkPeerSettings(config, this.mode === 'P2P' ? this.p2p : null);
  }

  /**
   * Checks the settings new and existing peers share: keepalive, and VPN addresses (refused
   * where the upstream module refuses them, or when another peer has them).
   */
  private checkPeerSettings(config: PeerConfig, self: Peer | null): void {
    if ((config.keepaliveInterval === undefined) !== (config.keepaliveTimeout === undefined)) {
      throw new OvpnError('EINVAL', 'keepalive interval and timeout are required together', 'keepalive-interval');
    }
    if (config.keepaliveInterval !== undefined) {
      checkSeconds(config.keepaliveInterval, 'keepalive-interval');
      checkSeconds(config.keepaliveTimeout, 'keepalive-timeout');
    }
    for (const [field, address, family] of [
      ['vpn-ipv4', config.vpnIpv4, 4],
      ['vpn-ipv6', config.vpnIpv6, 6],
    ] as const) {
      if (address === undefined) continue;
      checkIp(address, family, field);
      const problem = vpnAddressProblem(address, family);
      if (problem !== null)
        throw new OvpnError(
          'EINVAL',
          `${field} ${address} ${problem}: give the peer's own address inside the tunnel`,
          field,
        );
      const owner = this.router.peerWithVpnAddress(family, parseIpBytes(address)!.bytes);
      if (owner !== undefined && owner !== self) {
        throw new OvpnError(
          'EEXIST',
          `${field} ${address} already belongs to peer ${owner.id}: each peer needs its own VPN address`,
          field,
        );
      }
    }
  }

  /** Creates and registers a peer whose config was checked; P2P: replaces the old one. */
  private addPeer(config: PeerConfig, localPort: number, transport: Transport): Peer {
    if (this.mode === 'P2P') for (const old of [...this.peers.values()]) this.removePeer(old, 'TEARDOWN');
    const id = config.id;
    const peer = new Peer(id, localPort, transport);
    this.applyPeerConfig(peer, config);
    const now = performance.now();
    peer.lastSent = now;
    peer.lastRecv = now;
    peer.keys.onSwapNeeded = (keyId) => this.emit('key-swap-ntf', { ifname: this.name, peerId: id, keyId });
    this.peers.set(id, peer);
    if (this.mode === 'P2P') this.p2p = peer;
    return peer;
  }

  private releaseUdp(peer: Peer): void {
    const socket = this.sockets.get(peer.localPort);
    if (socket !== undefined && --socket.users === 0) {
      socket.close();
      this.sockets.delete(peer.localPort);
    }
  }

  // ---- TCP ----------------------------------------------------------------------------------

  /** The listening port, opened on first use and shared by the peers that wait on it. */
  private tcpPortFor(port: number): Promise<TcpPort> {
    let opening = this.tcpPorts.get(port);
    if (opening === undefined) {
      opening = TcpListener.open(port).then(
        (listener) => {
          const tcpPort: TcpPort = { listener, users: 0, waiting: [], pending: [] };
          listener.onConnection = (link) => this.onTcpConnection(tcpPort, link);
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

  /** A new connection goes to the first peer waiting on its port, or waits for one. */
  private onTcpConnection(tcpPort: TcpPort, link: TcpLink): void {
    const peer = tcpPort.waiting.shift();
    if (peer !== undefined) {
      this.attachTcp(peer, link);
      return;
    }
    // Control packets (a TLS handshake) may arrive before the control plane adds the peer.
    tcpPort.pending.push(link);
    link.onPackets = (batch) => receiveStream(this, null, link, tcpPort.listener.port, batch, performance.now());
    link.onClose = () => {
      const at = tcpPort.pending.indexOf(link);
      if (at >= 0) tcpPort.pending.splice(at, 1);
    };
  }

  private attachTcp(peer: Peer, link: TcpLink): void {
    this.tcpLinks.set(peer.id, link);
    copyEndpoint(peer.endpoint, 0, link.endpoint, 0);
    link.onPackets = (batch) => receiveStream(this, peer, link, peer.localPort, batch, performance.now());
    link.onClose = (reason) => this.removePeer(peer, reason);
  }

  private releaseTcp(peer: Peer): void {
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

  private socketFor(port: number): UdpSocket {
    const existing = this.sockets.get(port);
    if (existing !== undefined) return existing;
    const socket = UdpSocket.open(port);
    socket.bind.onReadable(() => receiveFrom(this, socket, performance.now()));
    this.sockets.set(socket.port, socket);
    return socket;
  }

  /** Applies settings checked by checkPeerSettings, so a half-applied config cannot happen. */
  private applyPeerConfig(peer: Peer, config: PeerConfig): void {
    if (config.vpnIpv4 !== undefined) peer.vpnIpv4 = config.vpnIpv4;
    if (config.vpnIpv6 !== undefined) peer.vpnIpv6 = config.vpnIpv6;
    if (config.vpnIpv4 !== undefined || config.vpnIpv6 !== undefined) {
      const bytes = (address: string | null) => (address === null ? null : parseIpBytes(address)!.bytes);
      this.router.setVpnAddresses(peer, bytes(peer.vpnIpv4), bytes(peer.vpnIpv6));
    }
    if (config.keepaliveInterval !== undefined && config.keepaliveTimeout !== undefined) {
      peer.keepaliveInterval = config.keepaliveInterval;
      peer.keepaliveTimeout = config.keepaliveTimeout;
      const now = performance.now();
      peer.lastSent = now;
      peer.lastRecv = now;
    }
  }

  private peerOrThrow(id: number, field = 'id'): Peer {
    this.assertOpen();
    const peer = this.peers.get(checkPeerId(id, field));
    if (peer === undefined) throw new OvpnError('ENOENT', `cannot find peer with id ${id}`, field);
    return peer;
  }

  private assertOpen(): void {
    if (this.closedReason !== null) throw new OvpnError('ENODEV', `interface is gone: ${this.closedReason}`, 'ifname');
  }
}

function checkPeerId(id: unknown, field: string): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_PEER_ID) {
    throw new OvpnError('EINVAL', `${field} must be an integer from 0 to ${MAX_PEER_ID}, got ${String(id)}`, field);
  }
  return id;
}

function checkPort(port: unknown, field: string): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OvpnError('EINVAL', `${field} must be a port number from 0 to 65535, got ${String(port)}`, field);
  }
  return port;
}

function checkSeconds(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new OvpnError(
      'EINVAL',
      `${field} must be a whole number of seconds (0 turns it off), got ${String(value)}`,
      field,
    );
  }
  return value;
}

function checkIp(address: unknown, family: 4 | 6, field: string): string {
  if (typeof address !== 'string' || isIP(address) !== family) {
    throw new OvpnError('EINVAL', `${field} must be an IPv${family} address, got ${JSON.stringify(address)}`, field);
  }
  return address;
}

function remoteOf(config: PeerConfig): { address: string; port: number; local?: string } | null {
  if (config.remoteIpv4 !== undefined && config.remoteIpv6 !== undefined) {
    throw new OvpnError('EINVAL', 'cannot specify both remote IPv4 or IPv6 address', 'remote-ipv4');
  }
  const v4 = config.remoteIpv4 !== undefined;
  const address = v4 ? config.remoteIpv4 : config.remoteIpv6;
  if (address === undefined) {
    if (config.remotePort !== undefined)
      throw new OvpnError('EINVAL', 'cannot specify remote port without IP address', 'remote-port');
    return null;
  }
  checkIp(address, v4 ? 4 : 6, v4 ? 'remote-ipv4' : 'remote-ipv6');
  if (config.remotePort === undefined)
    throw new OvpnError('EINVAL', 'cannot specify remote IP address without port', 'remote-port');
  const port = checkPort(config.remotePort, 'remote-port');
  const local = v4 ? config.localIpv4 : config.localIpv6;
  const otherLocal = v4 ? config.localIpv6 : config.localIpv4;
  if (otherLocal !== undefined)
    throw new OvpnError('EINVAL', 'mismatching local and remote address families', v4 ? 'local-ipv6' : 'local-ipv4');
  if (local !== undefined) checkIp(local, v4 ? 4 : 6, v4 ? 'local-ipv4' : 'local-ipv6');
  return local === undefined ? { address, port } : { address, port, local };
}

function parsePrefix(prefix: unknown): { family: 4 | 6; bytes: Uint8Array; prefixLen: number } {
  const [address, length, extra] = typeof prefix === 'string' ? prefix.split('/') : [];
  const parsed = address === undefined ? null : parseIpBytes(address);
  const max = parsed?.family === 4 ? 32 : 128;
  const prefixLen = length === undefined ? max : Number(length);
  if (
    parsed === null ||
    extra !== undefined ||
    !Number.isInteger(prefixLen) ||
    prefixLen < 0 ||
    prefixLen > max ||
    length === ''
  ) {
    throw new OvpnError(
      'EINVAL',
      `prefix must be an address or address/length such as 10.1.0.0/16 or fd00::/64, got ${JSON.stringify(prefix)}`,
      'prefix',
    );
  }
  return { family: parsed.family, bytes: parsed.bytes, prefixLen };
}

function connectErrorCode(error: unknown): OvpnErrorCode {
  const code = (error as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ETIMEDOUT' ? code : 'EIO';
}

function closeTcpPort(tcpPort: TcpPort): void {
  tcpPort.listener.close();
  for (const link of tcpPort.pending.splice(0)) link.close();
}

function slotOf(name: unknown): KeySlot {
  if (name === 'primary') return KeySlot.Primary;
  if (name === 'secondary') return KeySlot.Secondary;
  throw new OvpnError('EINVAL', `slot must be "primary" or "secondary", got ${JSON.stringify(name)}`, 'slot');
}

function resolveCipher(name: unknown, keyLength: number): CipherAlg {
  if (typeof name === 'string' && isCipherAlg(name)) return name;
  if (name === 'none') return 'NONE';
  if (name === 'chacha20-poly1305') return 'CHACHA20-POLY1305';
  if (name === 'aes-gcm') {
    const alg = ({ 16: 'AES-128-GCM', 24: 'AES-192-GCM', 32: 'AES-256-GCM' } as const)[keyLength as 16 | 24 | 32];
    if (alg !== undefined) return alg;
    throw new OvpnError('EINVAL', `aes-gcm needs a 16, 24 or 32-byte key, got ${keyLength} bytes`, 'encrypt-dir');
  }
  throw new OvpnError(
    'EINVAL',
    `unsupported cipher ${JSON.stringify(name)}: use aes-gcm, chacha20-poly1305, none, or one of AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305, NONE`,
    'cipher-alg',
  );
}

function peerInfo(peer: Peer): PeerInfo {
  // A TCP peer waiting for its connection has no remote yet.
  const known = peer.endpoint[0] === 4 || peer.endpoint[0] === 6;
  const remote = known ? readEndpoint(peer.endpoint, 0) : null;
  const v4 = remote?.family === 4;
  const info: PeerInfo = {
    id: peer.id,
    ...(remote === null
      ? {}
      : v4
        ? { remoteIpv4: remote.address, remotePort: remote.port }
        : { remoteIpv6: remote.address, remotePort: remote.port }),
    localPort: peer.localPort,
    transport: peer.transport,
    keepaliveInterval: peer.keepaliveInterval,
    keepaliveTimeout: peer.keepaliveTimeout,
    ...peer.stats,
    drops: { ...peer.drops },
  };
  if (remote?.local !== undefined) info[v4 ? 'localIpv4' : 'localIpv6'] = remote.local;
  if (peer.vpnIpv4 !== null) info.vpnIpv4 = peer.vpnIpv4;
  if (peer.vpnIpv6 !== null) info.vpnIpv6 = peer.vpnIpv6;
  return info;
}
