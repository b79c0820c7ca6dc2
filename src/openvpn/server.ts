/**
 * OpenVPN's multi-client server (`server NET MASK`, topology subnet) on one UDP or TCP port of
 * a multi-peer interface: a TLS session per client address (per connection over TCP), each
 * client a peer of its own with a peer-id and an address from the pool, told to it in the
 * PUSH_REPLY. A client whose session fails, that says EXIT (explicit-exit-notify over the control
 * channel), or whose peer the data channel deletes (expired, connection gone, ...), gives both
 * back.
 *
 * The port is held by the interface's listen, with no peer on it: the handshake is answered with
 * sendControl. A client gets its peer-id and address once its TLS handshake and key exchange are
 * done (when the PUSH_REPLY is made), and its peer once keys are negotiated, so strangers (a
 * flood of hard resets) take neither peers nor peer-ids nor addresses.
 */
import { EventEmitter } from 'node:events';
import { Opcode } from '../core/wire.js';
import type { KeySwapEvent, PacketEvent, PeerDelEvent, PeerFloatEvent } from '../device/api.js';
import type { OvpnInterface } from '../device/ovpn-interface.js';
import type { Clock, Timer } from '../edge/edges.js';
import { realClock } from '../edge/kernel.js';
import { decodeHeader } from './packet.js';
import { ControlSession, type Established, type PushOptions, type SessionOptions } from './session.js';
import type { ControlWrap } from './tls-wrap.js';

export interface ServerOptions
  extends Omit<SessionOptions, 'send' | 'clock' | 'role' | 'push' | 'pull' | 'wrap' | 'trace'> {
  iface: OvpnInterface;
  clock?: Clock;
  /** The port clients reach us on (0: any free one, see `port` once started). */
  localPort: number;
  /** udp (default) or tcp (`proto tcp-server`): each TCP connection is a client of its own. */
  transport?: 'udp' | 'tcp';
  /** Our tunnel address (the clients' route-gateway) and the pool's prefix length. */
  gateway: string;
  prefixLength: number;
  /** Client addresses, handed out in order and taken back when a client leaves. */
  pool: readonly string[];
  /**
   * server-ipv6: our IPv6 tunnel address (the clients' gateway), the prefix length, and the
   * clients' IPv6 addresses, paired with `pool` by position (a client gets both), as OpenVPN does.
   */
  ipv6?: { gateway: string; prefixLength: number; pool: readonly string[] };
  /** ping / ping-restart pushed to clients and used as each client peer's keepalive, seconds. */
  ping: number;
  pingRestart: number;
  /**
   * reneg-sec [max [min]]: renegotiate each client's keys this many seconds after its current
   * key came up, less a random jitter as OpenVPN's server does (up to a tenth, or down to `min`).
   * 0 or absent: only when the client asks, or the data channel's packet-ids run out.
   */
  renegotiateSeconds?: number;
  renegotiateSecondsMin?: number;
  /**
   * duplicate-cn: clients may share a certificate name (the default here). false is OpenVPN's
   * default: a client whose name is already connected replaces the one connected before.
   */
  duplicateCn?: boolean;
  /** More options for every PUSH_REPLY (routes, ...). */
  push?: readonly string[];
  /** A fresh tls-auth/tls-crypt context per client (each has its own packet-ids). */
  wrap?: () => ControlWrap;
}

export interface ClientInfo {
  peerId: number;
  address: string;
  /** Its IPv6 tunnel address, with server-ipv6. */
  address6?: string;
  remote: string;
  commonName?: string;
  cipher?: string;
}

export interface ServerEvents {
  /** A client's data channel is up. */
  connected: [ClientInfo & { established: Established }];
  /** A client is gone: session error or its peer deleted; `reason` says which. */
  disconnected: [ClientInfo & { reason: string }];
  /** A handshake that never became a client (refused certificate, no common cipher, no address left, ...). */
  refused: [{ remote: string; reason: string }];
}

interface Client {
  /** Its peer-id and address, once its handshake got that far. */
  info?: ClientInfo;
  /** The session id it sent (hex): the packets of its session carry it. */
  sessionId: string;
  /** A second session from the same address, in its handshake; and, on that one, the first. */
  successor?: Client;
  predecessor?: Client;
  dropped?: boolean;
  /** Its position in the pool, with info. */
  slot?: number;
  /** When we start its next renegotiation (reneg-sec), from its current key on. */
  renegotiation?: Timer;
  /** Its reneg-sec, jitter taken off once per client as OpenVPN does per session. */
  renegotiateMs: number;
  /** "address:port" it talks from. */
  label: string;
  session: ControlSession;
  /** Where its packets come from and ours go to, until it has a peer. */
  remote: PacketEvent['remote'];
}

/** How long a stopping server waits for its clients to acknowledge RESTART, as OpenVPN's does. */
const RESTART_WAIT_MS = 2000;

const endpointKey = (r: { address: string; port: number }) => `${r.address}/${r.port}`;

export class OpenvpnServer extends EventEmitter<ServerEvents> {
  private readonly byRemote = new Map<string, Client>();
  private readonly byPeerId = new Map<number, Client>();
  /** Peer-ids whose peer is on the interface. */
  private readonly added = new Set<number>();
  /** Positions in the pool (and the IPv6 pool) free to hand out, lowest first. */
  private readonly freeSlots: number[];
  private nextPeerId = 1;
  private readonly clock: Clock;
  private readonly transport: 'udp' | 'tcp';
  private boundPort: number | null = null;
  private readonly onPacket = (e: PacketEvent) => this.packet(e);
  private readonly onPeerDel = (e: PeerDelEvent) => {
    const client = this.byPeerId.get(e.peerId);
    if (client !== undefined) this.drop(client, `peer deleted (${e.reason})`, false);
  };
  /** A client's authenticated data came from a new address (float): its control packets will too. */
  private readonly onFloat = (e: PeerFloatEvent) => {
    const client = this.byPeerId.get(e.peerId);
    if (client === undefined) return;
    this.byRemote.delete(endpointKey(client.remote));
    client.remote = e.remote;
    client.label = `${e.remote.address}:${e.remote.port}`;
    if (client.info !== undefined) client.info.remote = client.label;
    this.byRemote.set(endpointKey(e.remote), client);
  };

  /** The data channel says a client's packet-ids are running out: renegotiate, as OpenVPN does. */
  private readonly onKeySwapNeeded = (e: KeySwapEvent) => {
    const client = this.byPeerId.get(e.peerId);
    if (client !== undefined) rekey(client);
  };

  constructor(private readonly options: ServerOptions) {
    super();
    this.clock = options.clock ?? realClock;
    this.transport = options.transport ?? 'udp';
    this.freeSlots = Array.from({ length: this.slotsInAll }, (_, i) => i);
  }

  /** Listens on the port; resolves once clients can connect. */
  async start(): Promise<void> {
    const { iface } = this.options;
    iface.on('packet-ntf', this.onPacket);
    iface.on('peer-del-ntf', this.onPeerDel);
    iface.on('peer-float-ntf', this.onFloat);
    iface.on('key-swap-ntf', this.onKeySwapNeeded);
    this.boundPort = await iface.listen(this.transport, this.options.localPort);
  }

  /** The port listened on (the one asked for, or the one picked for 0); null before start. */
  get port(): number | null {
    return this.boundPort;
  }

  close(): void {
    const { iface } = this.options;
    iface.off('packet-ntf', this.onPacket);
    iface.off('peer-del-ntf', this.onPeerDel);
    iface.off('peer-float-ntf', this.onFloat);
    iface.off('key-swap-ntf', this.onKeySwapNeeded);
    for (const client of [...this.byRemote.values()].flatMap((c) => (c.successor ? [c.successor, c] : [c])))
      this.drop(client, 'server closed', true);
    if (this.boundPort !== null) iface.unlisten(this.transport, this.boundPort);
    this.boundPort = null;
  }

  /**
   * Before stopping (explicit-exit-notify): tells each client over UDP to reconnect, with the
   * control message OpenVPN's server sends, RESTART, or RESTART,[N] (`nextServer`: try the next
   * remote). Over TCP the connection's end tells them. Resolves once every client has
   * acknowledged it, or after the two seconds OpenVPN's server waits.
   */
  async notifyRestart(nextServer: boolean): Promise<void> {
    const told: ControlSession[] = [];
    if (this.transport === 'udp') {
      for (const client of this.byPeerId.values()) {
        try {
          client.session.sendMessage(nextServer ? 'RESTART,[N]' : 'RESTART');
          told.push(client.session);
        } catch {
          // Its key exchange is not finished: there is no channel to tell it on.
        }
      }
    }
    if (told.length === 0) return;
    await new Promise<void>((resolve) => {
      const deadline = this.clock.now() + RESTART_WAIT_MS;
      const poll = this.clock.every(50, () => {
        if (!told.every((s) => s.settled) && this.clock.now() < deadline) return;
        poll.cancel();
        resolve();
      });
    });
  }

  clients(): ClientInfo[] {
    return [...this.byPeerId.values()].map((c) => c.info!);
  }

  /**
   * A control packet: to the session of its sender's address and session id. A hard reset with a
   * new session id from an address that has one (the client restarted on the same port) starts a
   * second session there, which replaces the first only once its handshake is done: a forged
   * reset cannot end a client.
   */
  private packet(e: PacketEvent): void {
    if (e.localPort !== this.boundPort) return;
    let header: ReturnType<typeof decodeHeader>;
    try {
      header = decodeHeader(e.data);
    } catch {
      return;
    }
    const sessionId = header.sessionId.toString('hex');
    const reset = header.opcode === Opcode.CONTROL_HARD_RESET_CLIENT_V2;
    const current = this.byRemote.get(endpointKey(e.remote));
    let client = current;
    if (current !== undefined && current.sessionId !== sessionId) {
      client = current.successor?.sessionId === sessionId ? current.successor : undefined;
      if (client === undefined && reset) {
        if (current.successor !== undefined) this.drop(current.successor, 'replaced by a newer reset', true);
        client = this.newClient(e, sessionId, current);
      }
    } else if (current === undefined && reset) client = this.newClient(e, sessionId);
    client?.session.receive(e.data);
  }

  private newClient(e: PacketEvent, sessionId: string, predecessor?: Client): Client {
    const { iface, push, wrap, transport: _, renegotiateSeconds, renegotiateSecondsMin, ...rest } = this.options;
    const label = `${e.remote.address}:${e.remote.port}`;
    const sessionOptions: SessionOptions = {
      ...rest,
      role: 'server',
      clock: this.clock,
      push: () => this.allocate(client),
      send: (packet) => {
        if (client.info !== undefined && this.added.has(client.info.peerId))
          iface.sendPacket(client.info.peerId, packet);
        else iface.sendControl(this.transport, e.localPort, client.remote, packet);
      },
    };
    if (wrap !== undefined) sessionOptions.wrap = wrap();
    const session = new ControlSession(sessionOptions);
    const client: Client = {
      label,
      session,
      remote: e.remote,
      sessionId,
      renegotiateMs: jittered(renegotiateSeconds ?? 0, renegotiateSecondsMin) * 1000,
    };
    session.on('established', (est) => this.established(client, est));
    session.on('active', () => {
      if (client.info !== undefined) iface.swapKeys(client.info.peerId);
    });
    session.on('error', (error) => this.drop(client, error.message, true));
    // explicit-exit-notify of a client that negotiated cc-exit: it is leaving, free its place now.
    session.on('message', (text) => {
      if (text === 'EXIT') this.drop(client, 'exit notification', true);
    });
    if (predecessor === undefined) this.byRemote.set(endpointKey(e.remote), client);
    else {
      predecessor.successor = client;
      client.predecessor = predecessor;
    }
    session.start();
    return client;
  }

  /** The client's handshake is done: a peer-id and an address for it, and what its PUSH_REPLY says. */
  private allocate(client: Client): PushOptions {
    const { gateway, prefixLength, ping, pingRestart, push, pool, ipv6 } = this.options;
    // A client restarted on the same address: its new session is through, the old one goes.
    const old = client.predecessor;
    if (old !== undefined) {
      old.successor = undefined;
      client.predecessor = undefined;
      this.drop(old, 'replaced by a new session', true);
      this.byRemote.set(endpointKey(client.remote), client);
    }
    const slot = this.freeSlots.shift();
    if (slot === undefined) throw new Error(`no free address in the pool (all ${this.slotsInAll} taken)`);
    const peerId = this.nextPeerId++;
    client.info = { peerId, address: pool[slot]!, remote: client.label };
    client.slot = slot;
    if (ipv6 !== undefined) client.info.address6 = ipv6.pool[slot]!;
    this.byPeerId.set(peerId, client);
    const options = [
      'topology subnet',
      `route-gateway ${gateway}`,
      `ping ${ping}`,
      `ping-restart ${pingRestart}`,
      // As OpenVPN: the client's IPv6 address with the pool's prefix length, and ours as its gateway.
      ...(ipv6 === undefined ? [] : [`ifconfig-ipv6 ${client.info.address6}/${ipv6.prefixLength} ${ipv6.gateway}`]),
      `ifconfig ${client.info.address} ${prefixToNetmask(prefixLength)}`,
      ...(push ?? []),
    ];
    return { peerId, options };
  }

  private get slotsInAll(): number {
    return Math.min(this.options.pool.length, this.options.ipv6?.pool.length ?? Number.POSITIVE_INFINITY);
  }

  /** The client's peer, once its session has keys: on the address (UDP) or connection (TCP) it talked from. */
  private addPeer(client: Client, info: ClientInfo): void {
    const { iface, ping, pingRestart } = this.options;
    const { remote } = client;
    const config: Parameters<OvpnInterface['newPeer']>[0] = {
      id: info.peerId,
      localPort: this.boundPort!,
      vpnIpv4: info.address,
      ...(info.address6 === undefined ? {} : { vpnIpv6: info.address6 }),
      keepaliveInterval: ping,
      keepaliveTimeout: pingRestart,
      remotePort: remote.port,
    };
    if (remote.family === 4) config.remoteIpv4 = remote.address;
    else config.remoteIpv6 = remote.address;
    if (remote.local !== undefined && this.transport === 'udp') {
      if (remote.family === 4) config.localIpv4 = remote.local;
      else config.localIpv6 = remote.local;
    }
    if (this.transport === 'udp') iface.newPeer(config);
    else {
      // The connection it talked from waits on our port: the peer takes it at once.
      iface.newTcpPeer(config).catch((error: Error) => this.drop(client, error.message, true));
    }
    this.added.add(info.peerId);
  }

  private established(client: Client, est: Established): void {
    const { iface } = this.options;
    const info = client.info!;
    try {
      if (!this.added.has(info.peerId)) this.addPeer(client, info);
      iface.newKey({
        peerId: info.peerId,
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
    if (client.renegotiateMs > 0) {
      client.renegotiation?.cancel();
      client.renegotiation = this.clock.after(client.renegotiateMs, () => rekey(client));
    }
    if (est.keyId !== 0) return;
    info.cipher = est.cipher;
    if (est.commonName !== undefined) info.commonName = est.commonName;
    if (this.options.duplicateCn === false && est.commonName !== undefined) this.dropSameName(client, est.commonName);
    this.emit('connected', { ...info, established: est });
  }

  /** Without duplicate-cn: the clients connected before under this name give way to `client`. */
  private dropSameName(client: Client, name: string): void {
    for (const other of [...this.byPeerId.values()]) {
      if (other !== client && other.info?.commonName === name)
        this.drop(other, `a new connection with the same name ${name} replaced it (duplicate-cn allows both)`, true);
    }
  }

  /** Forgets a client, deletes its peer if there is one, and gives back its peer-id's address. */
  private drop(client: Client, reason: string, deletePeer: boolean): void {
    if (client.dropped) return;
    client.dropped = true;
    const key = endpointKey(client.remote);
    if (this.byRemote.get(key) === client) this.byRemote.delete(key);
    if (client.predecessor?.successor === client) client.predecessor.successor = undefined;
    // The session that was to replace it carries on in its place.
    const next = client.successor;
    if (next !== undefined) {
      next.predecessor = undefined;
      this.byRemote.set(key, next);
    }
    client.renegotiation?.cancel();
    client.session.close();
    const { info } = client;
    if (info === undefined) {
      // Over TCP the connection is the session's (unless a newer session on it carries on):
      // OpenVPN closes it at once, so the client learns now rather than when the device lets
      // an unclaimed connection go.
      if (this.transport === 'tcp' && this.boundPort !== null && next === undefined)
        this.options.iface.hangUp(this.boundPort, client.remote);
      this.emit('refused', { remote: client.label, reason });
      return;
    }
    this.byPeerId.delete(info.peerId);
    if (this.added.delete(info.peerId) && deletePeer) {
      try {
        this.options.iface.delPeer(info.peerId);
      } catch {
        // Already gone with the interface.
      }
    }
    // Back in order: the next client gets the lowest free addresses, as from a fresh pool.
    const at = this.freeSlots.findIndex((free) => free > client.slot!);
    this.freeSlots.splice(at < 0 ? this.freeSlots.length : at, 0, client.slot!);
    this.emit('disconnected', { ...info, reason });
  }
}

/**
 * Starts a renegotiation with a client. One that is under way already, or a session not yet
 * established, refuses: the key that comes up next sets the next timer.
 */
function rekey(client: Client): void {
  try {
    client.session.rekey();
  } catch {
    // Nothing to do now.
  }
}

/** OpenVPN's server-side reneg-sec: max less random jitter, a tenth of it by default or down to min. */
export function jittered(seconds: number, min?: number): number {
  if (seconds <= 0) return 0;
  const spread = Math.max(min === undefined ? Math.floor(seconds / 10) : seconds - min, 1);
  return seconds - Math.floor(Math.random() * spread);
}

export function prefixToNetmask(prefixLength: number): string {
  const bits = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join('.');
}
