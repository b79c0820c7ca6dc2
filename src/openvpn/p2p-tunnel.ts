/**
 * One OpenVPN TLS session on one peer of our data channel: OpenVPN's point-to-point TLS mode
 * (`tls-server`/`tls-client` + `ifconfig`), a server pushing to one pull client, or a pull
 * client of an OpenVPN server. The peer's address is configured, a UDP peer is added for it so
 * its control packets reach us (packet-ntf) and ours reach it (sendPacket), and once the TLS
 * session has negotiated the data channel the peer is re-added under the negotiated peer-id and
 * given the key. Renegotiated keys go to the secondary slot and are swapped in once active; we
 * renegotiate on a timer (reneg-sec) and when the data channel reports packet-ids running out.
 */
import { EventEmitter } from 'node:events';
import type { KeySwapEvent, PacketEvent } from '../device/api.js';
import type { OvpnInterface } from '../device/ovpn-interface.js';
import type { Clock, Timer } from '../edge/edges.js';
import { realClock } from '../edge/kernel.js';
import { parsePushed } from './pushed.js';
import { ControlSession, type Established, type PushOptions, type Role, type SessionOptions } from './session.js';

/** The peer's id until the session has negotiated one; any id works, it is replaced. */
export const HANDSHAKE_PEER_ID = 0;

export interface P2pTlsOptions extends Omit<SessionOptions, 'send' | 'clock' | 'role' | 'push'> {
  role: Role;
  /** A server pushing to its one pull client: the peer-id is known up front. */
  push?: PushOptions;
  iface: OvpnInterface;
  /** The clock of the interface's edges; default the process's. */
  clock?: Clock;
  localPort: number;
  /** `local ADDR`: the source address of our UDP packets (the socket still receives on every address). */
  localIpv4?: string;
  remoteIpv4: string;
  remotePort: number;
  /** The data channel's keepalive, in seconds (OpenVPN's ping / ping-restart). */
  keepaliveInterval?: number;
  keepaliveTimeout?: number;
  /**
   * 'udp' (default) or 'tcp': the tls-server listens on localPort for the peer's connection, the
   * tls-client connects to remoteIpv4:remotePort. A TCP peer keeps its first id (re-adding it
   * would drop the connection); OpenVPN in P2P mode does not look at the peer-id it receives.
   */
  transport?: 'udp' | 'tcp';
  /** reneg-sec: start a renegotiation this often, in seconds (default never; the peer may). */
  renegotiateSeconds?: number;
}

export interface P2pTlsEvents {
  established: [Established];
  error: [Error];
}

export class P2pTlsTunnel extends EventEmitter<P2pTlsEvents> {
  readonly session: ControlSession;
  private peerId = HANDSHAKE_PEER_ID;
  private readonly clock: Clock;
  private renegotiation: Timer | undefined;
  private established = false;
  /** The data channel says a key's packet-ids are running out: renegotiate, as OpenVPN does. */
  private readonly onKeySwapNeeded = (event: KeySwapEvent) => {
    if (event.peerId === this.peerId && this.established) this.rekey();
  };
  private readonly onPacket = (event: PacketEvent) => {
    const ours = this.tcp ? event.peerId === this.peerId : event.localPort === this.options.localPort;
    if (ours && event.peerId === this.peerId) this.session.receive(event.data);
  };

  constructor(private readonly options: P2pTlsOptions) {
    super();
    const {
      iface,
      clock,
      role,
      localPort,
      localIpv4,
      remoteIpv4,
      remotePort,
      keepaliveInterval,
      keepaliveTimeout,
      renegotiateSeconds,
      transport,
      ...rest
    } = options;
    this.clock = clock ?? realClock;
    this.session = new ControlSession({
      ...rest,
      role,
      clock: this.clock,
      send: (packet) => iface.sendPacket(this.peerId, packet),
    });
    this.session.on('established', (e) => this.install(e));
    this.session.on('active', () => this.swap());
    this.session.on('error', (error) => this.emit('error', error));
  }

  /** Adds the peer (TCP: listening, or connected) and starts the session. */
  async start(): Promise<void> {
    // With push the server chooses the peer-id up front; P2P negotiation only learns it later.
    const id = this.options.push?.peerId ?? HANDSHAKE_PEER_ID;
    this.options.iface.on('packet-ntf', this.onPacket);
    if (this.tcp) await this.addTcpPeer(id);
    else this.addPeer(id);
    this.options.iface.on('key-swap-ntf', this.onKeySwapNeeded);
    const { renegotiateSeconds } = this.options;
    if (renegotiateSeconds !== undefined && renegotiateSeconds > 0)
      this.renegotiation = this.clock.every(renegotiateSeconds * 1000, () => {
        if (this.established) this.rekey();
      });
    this.session.start();
  }

  close(): void {
    this.options.iface.off('packet-ntf', this.onPacket);
    this.options.iface.off('key-swap-ntf', this.onKeySwapNeeded);
    this.renegotiation?.cancel();
    this.session.close();
  }

  private rekey(): void {
    try {
      this.session.rekey();
    } catch (error) {
      this.emit('error', error as Error);
    }
  }

  /** The id of the peer on the interface: the negotiated one over UDP, the first one over TCP. */
  get dataPeerId(): number {
    return this.peerId;
  }

  private get tcp(): boolean {
    return this.options.transport === 'tcp';
  }

  private async addTcpPeer(id: number): Promise<void> {
    const { localPort, remoteIpv4, remotePort, keepaliveInterval, keepaliveTimeout, role } = this.options;
    const config: Parameters<OvpnInterface['newTcpPeer']>[0] =
      role === 'server' ? { id, localPort } : { id, remoteIpv4, remotePort };
    if (keepaliveInterval !== undefined) config.keepaliveInterval = keepaliveInterval;
    if (keepaliveTimeout !== undefined) config.keepaliveTimeout = keepaliveTimeout;
    this.peerId = id;
    await this.options.iface.newTcpPeer(config);
  }

  private addPeer(id: number): void {
    const { localPort, localIpv4, remoteIpv4, remotePort, keepaliveInterval, keepaliveTimeout } = this.options;
    const config: Parameters<OvpnInterface['newPeer']>[0] = { id, localPort, remoteIpv4, remotePort };
    if (localIpv4 !== undefined) config.localIpv4 = localIpv4;
    if (keepaliveInterval !== undefined) config.keepaliveInterval = keepaliveInterval;
    if (keepaliveTimeout !== undefined) config.keepaliveTimeout = keepaliveTimeout;
    this.options.iface.newPeer(config);
    this.peerId = id;
  }

  private swap(): void {
    try {
      this.options.iface.swapKeys(this.peerId);
    } catch (error) {
      this.emit('error', error as Error);
    }
  }

  private install(e: Established): void {
    try {
      // P2P mode: the new peer replaces the handshake one and keeps its UDP port open throughout.
      if (e.keyId === 0 && e.peerId !== this.peerId && !this.tcp) this.addPeer(e.peerId);
      // A renegotiated key decrypts at once from the secondary slot and is swapped in to
      // encrypt once the peer has it ('active'); the old key then still decrypts what is in flight.
      this.options.iface.newKey({
        peerId: this.peerId,
        slot: e.keyId === 0 ? 'primary' : 'secondary',
        keyId: e.keyId,
        cipherAlg: e.cipher,
        encryptDir: e.keys.encryptDir,
        decryptDir: e.keys.decryptDir,
      });
      // A pull client keeps the server's ping rhythm, so neither end's ping-restart fires.
      if (e.pushed !== undefined) {
        const { ping, pingRestart } = parsePushed(e.pushed);
        if (ping !== undefined && pingRestart !== undefined)
          this.options.iface.setPeer({ id: this.peerId, keepaliveInterval: ping, keepaliveTimeout: pingRestart });
      }
    } catch (error) {
      this.emit('error', error as Error);
      return;
    }
    this.established = true;
    this.emit('established', e);
  }
}
