/**
 * The ovpn interface as a library object: a TUN device, the UDP sockets of its peers, the peer
 * table and the two data paths between them. Its methods mirror the netlink commands of the
 * kernel module (peer new/set/get/del, key new/get/swap/del) and its events mirror the
 * notifications (peer deleted, key swap needed) plus the control packets handed up.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isCipherAlg, type CipherAlg } from '../core/cipher.js';
import { newBatch, resetOffsets, MAX_BATCH, type PacketBatch } from '../core/batch.js';
import { newDropCounters, type DropCounters } from '../core/drops.js';
import { KeySlot, keySlotName } from '../core/key-slots.js';
import { MAX_KEY_ID, MAX_PEER_ID } from '../core/wire.js';
import { isNativeError } from '../edge/native.js';
import { TunDevice, TUN_GONE_CODE } from '../edge/tun.js';
import { newEndpoints, readEndpoint, writeEndpoint, type Endpoint } from '../edge/udp.js';
import { Peer, type DelPeerReasonName, type PeerStats } from '../peer/peer.js';
import { receiveFrom, sendKeepalive, transmit } from './data-path.js';
import { runKeepalives } from './timers.js';
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
}

export interface PeerConfig {
  id: number;
  remoteIpv4?: string;
  remoteIpv6?: string;
  remotePort?: number;
  localIpv4?: string;
  localIpv6?: string;
  /** Local UDP port: peers with the same port share one socket. */
  localPort?: number;
  vpnIpv4?: string;
  vpnIpv6?: string;
  keepaliveInterval?: number;
  keepaliveTimeout?: number;
}

/** A peer as peer-get reports it: its configuration, where it is now, and its counters. */
export interface PeerInfo extends PeerStats, Omit<PeerConfig, 'localPort' | 'keepaliveInterval' | 'keepaliveTimeout'> {
  localPort: number;
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
  'packet-ntf': [PacketEvent];
  /** The interface is gone (destroyed, or deleted from outside with `ip link del`). */
  closed: [{ ifname: string; reason: string }];
}

/** An error a caller can fix: names the field at fault and says what is expected. */
export class OvpnError extends Error {
  constructor(
    readonly code: 'EINVAL' | 'ENOENT' | 'EEXIST' | 'EBUSY' | 'ENODEV',
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'OvpnError';
  }
}

const KEEPALIVE_TICK_MS = 250;

export class OvpnInterface extends EventEmitter<InterfaceEvents> {
  readonly mode: InterfaceMode;
  readonly drops: DropCounters = newDropCounters();
  readonly peers = new Map<number, Peer>();
  /** Reused by the transmit path: packets read from the TUN, and their endpoint slots. */
  readonly txBatch: PacketBatch = newBatch();
  readonly txEndpoints: Buffer = newEndpoints(MAX_BATCH);
  readonly txPeers: (Peer | null)[] = new Array<Peer | null>(MAX_BATCH).fill(null);
  readonly rxPeers: (Peer | null)[] = new Array<Peer | null>(MAX_BATCH).fill(null);
  private readonly sockets = new Map<number, UdpSocket>();
  private readonly timer: NodeJS.Timeout;
  private closedReason: string | null = null;

  private constructor(
    readonly tun: TunDevice,
    mode: InterfaceMode,
  ) {
    super();
    this.mode = mode;
    this.tun.onReadable(() => this.onTunReadable());
    this.timer = setInterval(() => runKeepalives(this, performance.now()), KEEPALIVE_TICK_MS);
  }

  get name(): string {
    return this.tun.name;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  static create(options: InterfaceOptions): OvpnInterface {
    const mode = options.mode ?? 'P2P';
    if (mode !== 'P2P' && mode !== 'MP') throw new OvpnError('EINVAL', `mode must be P2P or MP, got ${String(mode)}`, 'mode');
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(options.name)) {
      throw new OvpnError('EINVAL', `interface name must be 1-15 letters, digits, '_', '.' or '-', got ${JSON.stringify(options.name)}`, 'ifname');
    }
    let tun: TunDevice;
    try {
      tun = TunDevice.open(options.name);
    } catch (error) {
      if (isNativeError(error, 'EBUSY')) throw new OvpnError('EBUSY', `interface ${options.name} already exists: delete it first or pick another name`, 'ifname');
      throw error;
    }
    try {
      tun.mtu = options.mtu ?? DEFAULT_MTU;
      tun.up();
    } catch (error) {
      tun.close();
      throw error;
    }
    return new OvpnInterface(tun, mode);
  }

  // ---- peers --------------------------------------------------------------------------------

  newPeer(config: PeerConfig): void {
    this.assertOpen();
    const id = checkPeerId(config.id, 'id');
    if (this.mode === 'MP' && this.peers.has(id)) throw new OvpnError('EEXIST', `peer ${id} already exists: delete it first or use another id`, 'id');
    if (this.mode === 'MP' && config.vpnIpv4 === undefined && config.vpnIpv6 === undefined) {
      throw new OvpnError('EINVAL', 'VPN IP must be provided in MP mode: set vpn-ipv4 or vpn-ipv6', 'vpn-ipv4');
    }
    const localPort = checkPort(config.localPort, 'local-port');
    const remote = remoteOf(config);
    if (remote === null) throw new OvpnError('EINVAL', 'missing remote IP address for UDP socket: set remote-ipv4 or remote-ipv6 and remote-port', 'remote-ipv4');
    if (this.mode === 'P2P') for (const old of [...this.peers.values()]) this.removePeer(old, 'TEARDOWN');

    const socket = this.socketFor(localPort);
    const peer = new Peer(id, socket.port);
    writeEndpoint(peer.endpoint, 0, remote);
    this.applyPeerConfig(peer, config);
    const now = performance.now();
    peer.lastSent = now;
    peer.lastRecv = now;
    peer.keys.onSwapNeeded = (keyId) => this.emit('key-swap-ntf', { ifname: this.name, peerId: id, keyId });
    socket.users++;
    this.peers.set(id, peer);
  }

  setPeer(config: PeerConfig): void {
    const peer = this.peerOrThrow(config.id);
    if (config.localPort !== undefined && config.localPort !== peer.localPort) {
      throw new OvpnError('EINVAL', 'socket cannot be modified: delete and re-add the peer to change local-port', 'local-port');
    }
    const remote = remoteOf(config);
    if (remote !== null) writeEndpoint(peer.endpoint, 0, remote);
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
    const socket = this.sockets.get(peer.localPort);
    if (socket !== undefined && --socket.users === 0) {
      socket.close();
      this.sockets.delete(peer.localPort);
    }
    this.emit('peer-del-ntf', { ifname: this.name, peerId: peer.id, reason });
  }

  // ---- keys ---------------------------------------------------------------------------------

  newKey(request: KeyConfigRequest): void {
    const peer = this.peerOrThrow(request.peerId, 'peer-id');
    const slot = slotOf(request.slot);
    if (!Number.isInteger(request.keyId) || request.keyId < 0 || request.keyId > MAX_KEY_ID) {
      throw new OvpnError('EINVAL', `key-id must be an integer from 0 to ${MAX_KEY_ID}, got ${String(request.keyId)}`, 'key-id');
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
    if (key === null) throw new OvpnError('ENOENT', `peer ${peerId} has no key in the ${keySlotName(slot)} slot`, 'slot');
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
    const socket = this.sockets.get(peer.localPort)!;
    const batch = newBatch(1, data.length + 64);
    batch.bufs[0]!.set(data, 0);
    batch.offsets[0] = 0;
    batch.sizes[0] = data.length;
    batch.count = 1;
    const sent = socket.bind.send(batch, peer.endpoint);
    if (sent < 1) this.drops.io++;
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
    for (const peer of [...this.peers.values()]) this.removePeer(peer, 'TEARDOWN');
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
    this.tun.close();
    this.emit('closed', { ifname: this.name, reason });
  }

  socketOf(peer: Peer): UdpSocket | undefined {
    return this.sockets.get(peer.localPort);
  }

  /** The one peer of a P2P interface, or null. */
  get p2pPeer(): Peer | null {
    if (this.peers.size === 0) return null;
    return this.peers.values().next().value ?? null;
  }

  // ---- internals ----------------------------------------------------------------------------

  private onTunReadable(): void {
    try {
      // Bounded so a flood from the TUN cannot starve the receive side of the event loop.
      for (let round = 0; round < 4; round++) {
        resetOffsets(this.txBatch);
        if (this.tun.read(this.txBatch) === 0) return;
        transmit(this, this.txBatch, performance.now());
      }
    } catch (error) {
      if (isNativeError(error, TUN_GONE_CODE)) this.destroy(`interface ${this.name} was deleted`);
      else throw error;
    }
  }

  private socketFor(port: number): UdpSocket {
    const existing = this.sockets.get(port);
    if (existing !== undefined) return existing;
    const socket = UdpSocket.open(port);
    socket.bind.onReadable(() => receiveFrom(this, socket, performance.now()));
    this.sockets.set(socket.port, socket);
    return socket;
  }

  private applyPeerConfig(peer: Peer, config: PeerConfig): void {
    if (config.vpnIpv4 !== undefined) peer.vpnIpv4 = checkIp(config.vpnIpv4, 4, 'vpn-ipv4');
    if (config.vpnIpv6 !== undefined) peer.vpnIpv6 = checkIp(config.vpnIpv6, 6, 'vpn-ipv6');
    if ((config.keepaliveInterval === undefined) !== (config.keepaliveTimeout === undefined)) {
      throw new OvpnError('EINVAL', 'keepalive interval and timeout are required together', 'keepalive-interval');
    }
    if (config.keepaliveInterval !== undefined) {
      peer.keepaliveInterval = checkSeconds(config.keepaliveInterval, 'keepalive-interval');
      peer.keepaliveTimeout = checkSeconds(config.keepaliveTimeout, 'keepalive-timeout');
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
    throw new OvpnError('EINVAL', `${field} must be a whole number of seconds (0 turns it off), got ${String(value)}`, field);
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
    if (config.remotePort !== undefined) throw new OvpnError('EINVAL', 'cannot specify remote port without IP address', 'remote-port');
    return null;
  }
  checkIp(address, v4 ? 4 : 6, v4 ? 'remote-ipv4' : 'remote-ipv6');
  if (config.remotePort === undefined) throw new OvpnError('EINVAL', 'cannot specify remote IP address without port', 'remote-port');
  const port = checkPort(config.remotePort, 'remote-port');
  const local = v4 ? config.localIpv4 : config.localIpv6;
  const otherLocal = v4 ? config.localIpv6 : config.localIpv4;
  if (otherLocal !== undefined) throw new OvpnError('EINVAL', 'mismatching local and remote address families', v4 ? 'local-ipv6' : 'local-ipv4');
  if (local !== undefined) checkIp(local, v4 ? 4 : 6, v4 ? 'local-ipv4' : 'local-ipv6');
  return local === undefined ? { address, port } : { address, port, local };
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
  throw new OvpnError('EINVAL', `unsupported cipher ${JSON.stringify(name)}: use aes-gcm, chacha20-poly1305, none, or one of AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305, NONE`, 'cipher-alg');
}

function peerInfo(peer: Peer): PeerInfo {
  const remote = readEndpoint(peer.endpoint, 0);
  const v4 = remote.family === 4;
  const info: PeerInfo = {
    id: peer.id,
    ...(v4 ? { remoteIpv4: remote.address } : { remoteIpv6: remote.address }),
    remotePort: remote.port,
    localPort: peer.localPort,
    keepaliveInterval: peer.keepaliveInterval,
    keepaliveTimeout: peer.keepaliveTimeout,
    ...peer.stats,
    drops: { ...peer.drops },
  };
  if (remote.local !== undefined) info[v4 ? 'localIpv4' : 'localIpv6'] = remote.local;
  if (peer.vpnIpv4 !== null) info.vpnIpv4 = peer.vpnIpv4;
  if (peer.vpnIpv6 !== null) info.vpnIpv6 = peer.vpnIpv6;
  return info;
}

