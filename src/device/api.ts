/**
 * The library API's types: what OvpnInterface takes (options, peer and key configuration), what
 * it reports (peer and key info, events) and the error it throws. They mirror the attributes of
 * the kernel module's netlink family, in camelCase.
 */
import type { CryptoBackendName } from '../core/aead.js';
import type { CipherAlg } from '../core/cipher.js';
import type { DropCounters } from '../core/drops.js';
import type { Endpoint } from '../core/endpoint.js';
import type { FlowQueueOptions } from '../core/flow-queue.js';
import type { Edges } from '../edge/edges.js';
import type { DelPeerReasonName, PeerStats, Transport } from '../peer/peer.js';
import type { ControlQueueOptions } from './control-queue.js';
import type { StrangerCounts } from './strangers.js';

export type InterfaceMode = 'P2P' | 'MP';

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
   * too short and it drops pings. Default `OVPN_TUN_TXQUEUELEN`, else DEFAULT_TXQUEUELEN.
   */
  txqueuelen?: number;
  /**
   * Open the TUN with virtio_net_hdr and accept checksum and TCP segmentation offload
   * (TUN_F_CSUM|TSO4|TSO6): the kernel hands us TCP super-packets (see gsoMaxSize) and we
   * segment them, and TCP segments we write are merged (gro). Falls back to a plain TUN when the
   * kernel refuses. Default: `OVPN_TUN_OFFLOAD` (0/off/no/false turn it off), else on.
   */
  offload?: boolean;
  /** With offload: the largest super-packet the kernel may hand us, in bytes. Default `OVPN_TUN_GSO_MAX_SIZE`. */
  gsoMaxSize?: number;
  /** With offload: merge consecutive TCP segments written to the TUN (GRO). Default `OVPN_TUN_GRO`, else on. */
  gro?: boolean;
  /**
   * With offload: merge consecutive datagrams of one UDP flow written to the TUN into one UDP
   * super-packet, on kernels whose TUN takes them (6.2 and later; others write them one by one).
   * Default `OVPN_TUN_UDP_GRO`, else on.
   */
  udpGro?: boolean;
  /**
   * The queue packets read from the TUN wait in before they are sealed: sparse flows first; bulk
   * flows through CoDel and a byte limit (core/flow-queue.ts). Defaults DEFAULT_FLOW_QUEUE, or
   * from the environment: `OVPN_TX_QUEUE_SLOTS`, `OVPN_TX_QUEUE_BULK_BYTES`,
   * `OVPN_CODEL_TARGET_US`, `OVPN_CODEL_INTERVAL_US`.
   */
  flowQueue?: Partial<FlowQueueOptions>;
  /**
   * Packets per TUN read and per UDP receive, at most MAX_BATCH. Default `OVPN_DATA_PATH_BATCH`,
   * else MAX_BATCH. Each batch leaves as one burst that the far end's socket must absorb.
   */
  batchSize?: number;
  /**
   * Bounds on control packets waiting for the control plane (anyone can send them): queue slots
   * and bytes, oldest pushed out first, and the rate they are handed up at. Default
   * DEFAULT_CONTROL_QUEUE.
   */
  controlQueue?: Partial<ControlQueueOptions>;
  /**
   * Where the data channel's AEAD runs: `native`, the shim's per-key OpenSSL contexts (the
   * OpenSSL inside node), one call per run of packets; or `node`, node:crypto packet by packet,
   * the reference. Default `OVPN_CRYPTO`, else native.
   */
  crypto?: CryptoBackendName;
  /** The TUN, sockets, routes and clock to use; default the kernel's (edge/kernel.ts). */
  edges?: Edges;
}

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
  /** Milliseconds since the last authenticated packet from the peer; absent until one came. */
  lastRxAgeMs?: number;
}

export type KeySlotName = 'primary' | 'secondary';

export interface KeyDirConfig {
  cipherKey: Uint8Array;
  nonceTail: Uint8Array;
}

/** Our cipher names, or the netlink ones ('aes-gcm' takes its size from the key length). */
export type CipherName = CipherAlg | 'aes-gcm' | 'chacha20-poly1305' | 'none';

export interface KeyConfigRequest {
  peerId: number;
  slot: KeySlotName;
  keyId: number;
  cipherAlg: CipherName;
  encryptDir: KeyDirConfig;
  decryptDir: KeyDirConfig;
}

export interface KeyInfo {
  peerId: number;
  slot: KeySlotName;
  keyId: number;
  cipherAlg: CipherAlg;
}

/** The interface itself, as iface-get reports it. */
export interface InterfaceInfo {
  ifname: string;
  mode: InterfaceMode;
  ifindex: number;
  mtu: number;
  peers: number;
  /** Packets refused before a peer was known. */
  drops: DropCounters;
  /** The transmit flow queue (core/flow-queue.ts). */
  txQueue: { length: number; slots: number; codelDrops: number; overflowDrops: number };
  /** Control packets waiting to be handed up (device/control-queue.ts). */
  controlQueue: number;
  /** What anyone can send without a key: control packets, traffic on unassigned TCP connections. */
  unauthenticated: StrangerCounts;
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
