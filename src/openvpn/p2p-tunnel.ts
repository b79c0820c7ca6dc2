/**
 * One OpenVPN TLS session on one peer of our data channel: OpenVPN's point-to-point TLS mode
 * (`tls-server`/`tls-client` + `ifconfig`), a server pushing to one pull client, or a pull
 * client of an OpenVPN server. The peer's address is configured, a UDP peer is added for it so its control packets reach us (packet-ntf)
 * and ours reach it (sendPacket), and once the TLS session has negotiated the data channel the
 * peer is re-added under the negotiated peer-id and given the key.
 */
import { EventEmitter } from 'node:events';
import type { PacketEvent } from '../device/api.js';
import type { OvpnInterface } from '../device/ovpn-interface.js';
import type { Clock } from '../edge/edges.js';
import { realClock } from '../edge/kernel.js';
import { parsePushed } from './pushed.js';
import { ControlSession, type Established, type Role, type SessionOptions } from './session.js';

/** The peer's id until the session has negotiated one; any id works, it is replaced. */
export const HANDSHAKE_PEER_ID = 0;

export interface P2pTlsOptions extends Omit<SessionOptions, 'send' | 'clock' | 'role'> {
  role: Role;
  iface: OvpnInterface;
  /** The clock of the interface's edges; default the process's. */
  clock?: Clock;
  localPort: number;
  remoteIpv4: string;
  remotePort: number;
  /** The data channel's keepalive, in seconds (OpenVPN's ping / ping-restart). */
  keepaliveInterval?: number;
  keepaliveTimeout?: number;
}

export interface P2pTlsEvents {
  established: [Established];
  error: [Error];
}

export class P2pTlsTunnel extends EventEmitter<P2pTlsEvents> {
  readonly session: ControlSession;
  private peerId = HANDSHAKE_PEER_ID;
  private readonly onPacket = (event: PacketEvent) => {
    if (event.localPort === this.options.localPort && event.peerId === this.peerId) this.session.receive(event.data);
  };

  constructor(private readonly options: P2pTlsOptions) {
    super();
    const { iface, clock, role, localPort, remoteIpv4, remotePort, keepaliveInterval, keepaliveTimeout, ...rest } =
      options;
    this.session = new ControlSession({
      ...rest,
      role,
      clock: clock ?? realClock,
      send: (packet) => iface.sendPacket(this.peerId, packet),
    });
    this.session.on('established', (e) => this.install(e));
    this.session.on('error', (error) => this.emit('error', error));
  }

  start(): void {
    // With push the server chooses the peer-id up front; P2P negotiation only learns it later.
    this.addPeer(this.options.push?.peerId ?? HANDSHAKE_PEER_ID);
    this.options.iface.on('packet-ntf', this.onPacket);
    this.session.start();
  }

  close(): void {
    this.options.iface.off('packet-ntf', this.onPacket);
    this.session.close();
  }

  private addPeer(id: number): void {
    const { localPort, remoteIpv4, remotePort, keepaliveInterval, keepaliveTimeout } = this.options;
    const config: Parameters<OvpnInterface['newPeer']>[0] = { id, localPort, remoteIpv4, remotePort };
    if (keepaliveInterval !== undefined) config.keepaliveInterval = keepaliveInterval;
    if (keepaliveTimeout !== undefined) config.keepaliveTimeout = keepaliveTimeout;
    this.options.iface.newPeer(config);
    this.peerId = id;
  }

  private install(e: Established): void {
    try {
      // P2P mode: the new peer replaces the handshake one and keeps its UDP port open throughout.
      if (e.peerId !== this.peerId) this.addPeer(e.peerId);
      this.options.iface.newKey({
        peerId: e.peerId,
        slot: 'primary',
        keyId: e.keyId,
        cipherAlg: e.cipher,
        encryptDir: e.keys.encryptDir,
        decryptDir: e.keys.decryptDir,
      });
      // A pull client keeps the server's ping rhythm, so neither end's ping-restart fires.
      if (e.pushed !== undefined) {
        const { ping, pingRestart } = parsePushed(e.pushed);
        if (ping !== undefined && pingRestart !== undefined)
          this.options.iface.setPeer({ id: e.peerId, keepaliveInterval: ping, keepaliveTimeout: pingRestart });
      }
    } catch (error) {
      this.emit('error', error as Error);
      return;
    }
    this.emit('established', e);
  }
}
