/**
 * A point-to-point or pull client that keeps its tunnel up as OpenVPN does: one P2pTlsTunnel per
 * attempt, to the `remote`s in turn. An attempt ends when its TLS session fails, its TCP
 * connection is refused or closes, the remote does not complete the handshake within
 * server-poll-timeout, or the data channel's keepalive expires (ping-restart); then, after the
 * connect-retry pause (doubling once every remote has failed five times, up to its cap), the next
 * remote gets a fresh session, whose keys the data channel takes as new. As OpenVPN, a session
 * that was up is first retried on the same remote; failures move on. The peer's own word ends a
 * session too: EXIT (a P2P peer leaving), RESTART (a server going away; `,[N]`: try the next
 * remote), HALT (stop). connect-retry-max ends it after that many rounds. `exit()` says goodbye
 * first (explicit-exit-notify).
 */
import { EventEmitter } from 'node:events';
import type { PeerDelEvent } from '../device/api.js';
import type { OvpnInterface } from '../device/ovpn-interface.js';
import type { Clock, Timer } from '../edge/edges.js';
import { realClock } from '../edge/kernel.js';
import type { ConnectPlan, PlannedRemote } from './options.js';
import { HANDSHAKE_PEER_ID, type P2pTlsOptions, P2pTlsTunnel } from './p2p-tunnel.js';
import type { Established } from './session.js';

export interface ReconnectOptions {
  iface: OvpnInterface;
  /** The tunnel's options; remote, transport and wrapping are set per attempt from `connect`. */
  tunnel: Omit<P2pTlsOptions, 'iface'>;
  connect: ConnectPlan;
  clock?: Clock;
}

export interface ReconnectEvents {
  /** A new session starts toward `remote` (the n-th attempt from 1). */
  attempt: [{ remote: PlannedRemote; attempt: number }];
  /** The session of this attempt has keys (key-id 0, then each renegotiation). */
  established: [Established & { remote: PlannedRemote }];
  /** The attempt ended; the next one follows after `pauseSeconds`. */
  down: [{ reason: string; pauseSeconds: number; wasUp: boolean }];
  /** connect-retry-max rounds went by without a tunnel, or the server said HALT. */
  'gave-up': [{ reason: string }];
  /** The goodbye could not be sent. */
  error: [Error];
}

/** OpenVPN's reasons for a deleted peer, as its log says them. */
const DEL_REASON: Partial<Record<PeerDelEvent['reason'], string>> = {
  EXPIRED: 'ping-restart: nothing heard from the peer within the keepalive timeout',
  TRANSPORT_DISCONNECT: 'connection closed by the peer',
  TRANSPORT_ERROR: 'connection failed',
};

/** The pause before the next attempt, as OpenVPN's socket_restart_pause computes it for a client. */
export function retryPause(connect: ConnectPlan, unsuccessful: number): number {
  let seconds = connect.retrySeconds;
  const backoff = Math.floor(unsuccessful / connect.remotes.length) - 4;
  if (backoff > 0) seconds = Math.max(seconds, 1) * 2 ** Math.min(backoff, 15);
  return Math.min(seconds, connect.retryMaxSeconds);
}

export class ReconnectingClient extends EventEmitter<ReconnectEvents> {
  private readonly clock: Clock;
  private tunnel: P2pTlsTunnel | undefined;
  private index = 0;
  private attempts = 0;
  /** Attempts since the last one that came up (OpenVPN's unsuccessful_attempts). */
  private unsuccessful = 0;
  private rounds = 0;
  private up = false;
  private stopped = false;
  private pollTimer: Timer | undefined;
  private retryTimer: Timer | undefined;
  private readonly onPeerDel = (event: PeerDelEvent) => {
    // TEARDOWN: the handshake peer replaced by the negotiated one (P2P mode), or the interface going.
    if (event.reason === 'TEARDOWN') return;
    if (this.tunnel !== undefined && event.peerId === this.tunnel.dataPeerId)
      this.restart(DEL_REASON[event.reason] ?? `peer deleted (${event.reason})`);
  };

  constructor(private readonly options: ReconnectOptions) {
    super();
    this.clock = options.clock ?? realClock;
  }

  /** The remote of the current (or last) attempt. */
  get remote(): PlannedRemote {
    return this.options.connect.remotes[this.index]!;
  }

  get current(): P2pTlsTunnel | undefined {
    return this.tunnel;
  }

  start(): void {
    this.options.iface.on('peer-del-ntf', this.onPeerDel);
    this.attempt();
  }

  /**
   * explicit-exit-notify, then stop: a peer that negotiated cc-exit gets the EXIT control message,
   * and we wait (at most the configured seconds) until it is acknowledged. Resolves to whether
   * the goodbye went out.
   */
  async exit(): Promise<boolean> {
    const session = this.up ? this.tunnel?.session : undefined;
    const waitMs = this.options.connect.exitNotify * 1000;
    let sent = false;
    if (session !== undefined && waitMs > 0) {
      try {
        sent = session.sendExit();
      } catch (error) {
        this.emit('error', error as Error);
      }
      const deadline = this.clock.now() + waitMs;
      while (sent && !session.settled && this.clock.now() < deadline)
        await new Promise<void>((resolve) => this.clock.after(50, resolve));
    }
    this.close();
    return sent;
  }

  close(): void {
    this.stopped = true;
    this.options.iface.off('peer-del-ntf', this.onPeerDel);
    this.retryTimer?.cancel();
    this.endAttempt();
  }

  private attempt(): void {
    if (this.stopped) return;
    const { connect, tunnel: base, iface } = this.options;
    const remote = this.remote;
    this.attempts++;
    this.up = false;
    const options: P2pTlsOptions = {
      ...base,
      iface,
      remoteIpv4: remote.host,
      remotePort: remote.port,
      transport: remote.transport,
    };
    // Each session after the first has its own tls-auth/tls-crypt packet-ids.
    if (this.attempts > 1 && connect.newWrap !== undefined) options.wrap = connect.newWrap();
    const tunnel = new P2pTlsTunnel(options);
    this.tunnel = tunnel;
    this.emit('attempt', { remote, attempt: this.attempts });
    tunnel.on('established', (e) => {
      if (this.tunnel !== tunnel) return;
      if (e.keyId === 0) {
        this.up = true;
        this.unsuccessful = 0;
        this.rounds = 0;
        this.pollTimer?.cancel();
      }
      this.emit('established', { ...e, remote });
    });
    tunnel.on('error', (error) => {
      if (this.tunnel === tunnel) this.restart(error.message);
    });
    tunnel.session.on('message', (text) => {
      if (this.tunnel === tunnel) this.peerSays(text);
    });
    this.pollTimer = this.clock.after(connect.pollTimeout * 1000, () => {
      if (this.tunnel === tunnel && !this.up)
        this.restart(`no answer within server-poll-timeout ${connect.pollTimeout} s`);
    });
    tunnel.start().catch((error: Error) => {
      if (this.tunnel === tunnel) this.restart(error.message);
    });
  }

  /** The control messages by which OpenVPN peers end a session (push.c's EXIT, RESTART, HALT). */
  private peerSays(text: string): void {
    if (text === 'EXIT') this.restart('the peer is leaving (EXIT)');
    else if (text === 'HALT' || text.startsWith('HALT,')) this.halt('the server told us to stop (HALT)');
    else if (text === 'RESTART' || text.startsWith('RESTART,'))
      this.restart('the server is restarting (RESTART)', /^RESTART,\[[A-Z]*N[A-Z]*\]/.test(text));
  }

  private halt(reason: string): void {
    this.endAttempt();
    this.stopped = true;
    this.emit('gave-up', { reason });
  }

  /**
   * Ends the current attempt and schedules the next: to the same remote after a session that was
   * up (OpenVPN's no_advance), else (or when told to) to the next one.
   */
  private restart(reason: string, advance?: boolean): void {
    if (this.stopped || this.tunnel === undefined) return;
    const wasUp = this.up;
    this.endAttempt();
    if (!wasUp) this.unsuccessful++;
    const { connect } = this.options;
    if (advance ?? !wasUp) {
      this.index = (this.index + 1) % connect.remotes.length;
      // A round through the list without a tunnel counts toward connect-retry-max.
      if (this.index === 0 && !wasUp) this.rounds++;
    }
    if (connect.rounds !== null && this.rounds >= connect.rounds) {
      this.halt(`connect-retry-max ${connect.rounds}: ${reason}`);
      return;
    }
    const pauseSeconds = retryPause(connect, this.unsuccessful);
    this.emit('down', { reason, pauseSeconds, wasUp });
    this.retryTimer = this.clock.after(pauseSeconds * 1000, () => this.attempt());
  }

  /** Closes the session and takes its peer off the interface (ignoring what is already gone). */
  private endAttempt(): void {
    const tunnel = this.tunnel;
    if (tunnel === undefined) return;
    this.tunnel = undefined;
    this.up = false;
    this.pollTimer?.cancel();
    tunnel.close();
    const { iface } = this.options;
    if (iface.closed) return;
    for (const id of new Set([tunnel.dataPeerId, HANDSHAKE_PEER_ID])) {
      try {
        iface.delPeer(id);
      } catch {
        // never added, or already deleted (expired, connection closed)
      }
    }
  }
}
