/**
 * OpenVPN's multi-client server (`server NET MASK`, topology subnet) on one UDP port of a
 * multi-peer interface: a TLS session per client address, each client a peer of its own with a
 * peer-id and an address from the pool, told to it in the PUSH_REPLY. A client whose session
 * fails, that says EXIT (explicit-exit-notify over the control channel), or whose peer the data
 * channel deletes (expired, ...), gives both back.
 *
 * The interface opens a UDP port only for a peer, and sends only to peers; so a placeholder
 * peer holds the port (its VPN address is in 100::/64, the discard prefix, where nothing is
 * routed), and a client's peer is added once its first packet authenticates (with tls-auth or
 * tls-crypt; without, at its first hard reset), so that our answers can reach it.
 */
import { EventEmitter } from 'node:events';
import { Opcode } from '../core/wire.js';
import type { PacketEvent, PeerDelEvent } from '../device/api.js';
import type { OvpnInterface } from '../device/ovpn-interface.js';
import type { Clock } from '../edge/edges.js';
import { realClock } from '../edge/kernel.js';
import { decodeHeader } from './packet.js';
import { ControlSession, type Established, type SessionOptions } from './session.js';
import type { ControlWrap } from './tls-wrap.js';

/** Ids above every client's: the placeholder that holds the UDP port. */
export const LISTENER_PEER_ID = 0xfffffe;
const LISTENER_VPN_ADDRESS = '100::1';

export interface ServerOptions
  extends Omit<SessionOptions, 'send' | 'clock' | 'role' | 'push' | 'pull' | 'wrap' | 'trace'> {
  iface: OvpnInterface;
  clock?: Clock;
  localPort: number;
  /** Our tunnel address (the clients' route-gateway) and the pool's prefix length. */
  gateway: string;
  prefixLength: number;
  /** Client addresses, handed out in order and taken back when a client leaves. */
  pool: readonly string[];
  /** ping / ping-restart pushed to clients and used as each client peer's keepalive, seconds. */
  ping: number;
  pingRestart: number;
  /** More options for every PUSH_REPLY (routes, ...). */
  push?: readonly string[];
  /** A fresh tls-auth/tls-crypt context per client (each has its own packet-ids). */
  wrap?: () => ControlWrap;
}

export interface ClientInfo {
  peerId: number;
  address: string;
  remote: string;
  commonName?: string;
  cipher?: string;
}

export interface ServerEvents {
  /** A client's data channel is up. */
  connected: [ClientInfo & { established: Established }];
  /** A client is gone: session error or its peer deleted; `reason` says which. */
  disconnected: [ClientInfo & { reason: string }];
}

interface Client {
  info: ClientInfo;
  session: ControlSession;
  /** Whether the client's peer exists on the interface yet. */
  added: boolean;
}

const remoteKey = (e: PacketEvent) => `${e.localPort}/${e.remote.address}/${e.remote.port}`;

export class OpenvpnServer extends EventEmitter<ServerEvents> {
  private readonly byRemote = new Map<string, Client>();
  private readonly byPeerId = new Map<number, Client>();
  private readonly freeAddresses: string[];
  private nextPeerId = 1;
  private readonly clock: Clock;
  private readonly onPacket = (e: PacketEvent) => this.packet(e);
  private readonly onPeerDel = (e: PeerDelEvent) => {
    const client = this.byPeerId.get(e.peerId);
    if (client !== undefined) this.drop(client, `peer deleted (${e.reason})`, false);
  };

  constructor(private readonly options: ServerOptions) {
    super();
    this.clock = options.clock ?? realClock;
    this.freeAddresses = [...options.pool];
  }

  start(): void {
    const { iface, localPort } = this.options;
    iface.newPeer({
      id: LISTENER_PEER_ID,
      localPort,
      remoteIpv4: '127.0.0.1',
      remotePort: 9,
      vpnIpv6: LISTENER_VPN_ADDRESS,
    });
    iface.on('packet-ntf', this.onPacket);
    iface.on('peer-del-ntf', this.onPeerDel);
  }

  close(): void {
    const { iface } = this.options;
    iface.off('packet-ntf', this.onPacket);
    iface.off('peer-del-ntf', this.onPeerDel);
    for (const client of [...this.byRemote.values()]) this.drop(client, 'server closed', true);
  }

  clients(): ClientInfo[] {
    return [...this.byRemote.values()].map((c) => c.info);
  }

  private packet(e: PacketEvent): void {
    if (e.localPort !== this.options.localPort || e.peerId === LISTENER_PEER_ID) return;
    let client = e.peerId === null ? this.byRemote.get(remoteKey(e)) : this.byPeerId.get(e.peerId);
    if (client === undefined && e.peerId === null) {
      let opcode: number;
      try {
        opcode = decodeHeader(e.data).opcode;
      } catch {
        return;
      }
      if (opcode !== Opcode.CONTROL_HARD_RESET_CLIENT_V2) return;
      client = this.newClient(e);
      if (client === undefined) return;
    }
    client?.session.receive(e.data);
  }

  private newClient(e: PacketEvent): Client | undefined {
    const address = this.freeAddresses.shift();
    if (address === undefined) return undefined;
    const { iface, gateway, prefixLength, ping, pingRestart, push, wrap, ...rest } = this.options;
    const peerId = this.nextPeerId++;
    const mask = prefixToNetmask(prefixLength);
    const info: ClientInfo = { peerId, address, remote: `${e.remote.address}:${e.remote.port}` };
    const pushed = [
      'topology subnet',
      `route-gateway ${gateway}`,
      `ping ${ping}`,
      `ping-restart ${pingRestart}`,
      `ifconfig ${address} ${mask}`,
      ...(push ?? []),
    ];
    const sessionOptions: SessionOptions = {
      ...rest,
      role: 'server',
      clock: this.clock,
      push: { peerId, options: pushed },
      send: (packet) => {
        // The first answer goes out only once the client's first packet has authenticated.
        if (!client.added) this.addPeer(client, e);
        iface.sendPacket(peerId, packet);
      },
    };
    if (wrap !== undefined) sessionOptions.wrap = wrap();
    const session = new ControlSession(sessionOptions);
    const client: Client = { info, session, added: false };
    session.on('established', (est) => this.established(client, est));
    session.on('active', () => iface.swapKeys(peerId));
    session.on('error', (error) => this.drop(client, error.message, true));
    // explicit-exit-notify of a client that negotiated cc-exit: it is leaving, free its place now.
    session.on('message', (text) => {
      if (text === 'EXIT') this.drop(client, 'exit notification', true);
    });
    this.byRemote.set(remoteKey(e), client);
    this.byPeerId.set(peerId, client);
    session.start();
    return client;
  }

  private addPeer(client: Client, e: PacketEvent): void {
    const { iface, localPort, ping, pingRestart } = this.options;
    const config: Parameters<OvpnInterface['newPeer']>[0] = {
      id: client.info.peerId,
      localPort,
      vpnIpv4: client.info.address,
      keepaliveInterval: ping,
      keepaliveTimeout: pingRestart,
    };
    if (e.remote.family === 4) config.remoteIpv4 = e.remote.address;
    else config.remoteIpv6 = e.remote.address;
    config.remotePort = e.remote.port;
    if (e.remote.local !== undefined) {
      if (e.remote.family === 4) config.localIpv4 = e.remote.local;
      else config.localIpv6 = e.remote.local;
    }
    iface.newPeer(config);
    client.added = true;
  }

  private established(client: Client, est: Established): void {
    const { iface } = this.options;
    try {
      iface.newKey({
        peerId: client.info.peerId,
        slot: est.keyId === 0 ? 'primary' : 'secondary',
        keyId: est.keyId,
        cipherAlg: est.cipher,
        encryptDir: est.keys.encryptDir,
        decryptDir: est.keys.decryptDir,
      });
    } catch (error) {
      this.drop(client, (error as Error).message, true);
      return;
    }
    if (est.keyId !== 0) return;
    client.info.cipher = est.cipher;
    if (est.commonName !== undefined) client.info.commonName = est.commonName;
    this.emit('connected', { ...client.info, established: est });
  }

  /** Forgets a client, deletes its peer if still there, and gives back its address. */
  private drop(client: Client, reason: string, deletePeer: boolean): void {
    const { peerId, address } = client.info;
    if (this.byPeerId.get(peerId) !== client) return;
    this.byPeerId.delete(peerId);
    for (const [key, c] of this.byRemote) if (c === client) this.byRemote.delete(key);
    client.session.close();
    if (deletePeer && client.added) {
      try {
        this.options.iface.delPeer(peerId);
      } catch {
        // Already gone with the interface.
      }
    }
    this.freeAddresses.push(address);
    this.emit('disconnected', { ...client.info, reason });
  }
}

export function prefixToNetmask(prefixLength: number): string {
  const bits = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join('.');
}
