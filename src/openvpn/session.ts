/**
 * One OpenVPN TLS session in either role: the reset exchange that pairs session ids, TLS
 * (node:tls) over the reliability layer, key method 2 both ways, and then the data-channel
 * parameters: cipher (P2P negotiation: the tls-server's first cipher the client also has),
 * peer-id, and keys by the exporter when the peer announces it, else by OpenVPN's PRF. When the
 * peer renegotiates (soft reset under a new key-id), a new key state runs its own TLS session
 * and key exchange beside the current key and yields new keys with the same cipher and peer-id.
 *
 * Bytes in and out are whole control packets without tls-auth or tls-crypt wrapping; the owner
 * moves them (OvpnInterface packet-ntf and sendPacket, or anything else).
 */

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, createSecureContext, DEFAULT_CIPHERS, TLSSocket } from 'node:tls';
import { type CipherAlg, isCipherAlg } from '../core/cipher.js';
import { Opcode } from '../core/wire.js';
import type { Clock, Timer } from '../edge/edges.js';
import {
  type DirectionKeys,
  directionKeys,
  key2FromExporter,
  key2FromPrf,
  P2P_FIXED_PEER_ID,
  p2pPeerId,
} from './data-keys.js';
import {
  buildPeerInfo,
  commonCipher,
  decodeKeyMethod2,
  encodeKeyMethod2,
  IvProto,
  ivProtoOf,
  type KeyMethod2,
  PRE_MASTER_SIZE,
  parsePeerInfo,
  RANDOM_SIZE,
} from './key-method.js';
import {
  type ControlOpcode,
  ControlPacketError,
  decodeControlBody,
  decodeHeader,
  encodeControlPacket,
  SESSION_ID_SIZE,
} from './packet.js';
import { ReliableLink, type ReliableStats } from './reliable.js';
import { ControlStream } from './tls-duplex.js';
import type { ControlWrap } from './tls-wrap.js';
import { checkX509Name, parseCaBundle, type VerifyX509Name, verifyPeerChain } from './verify.js';

export type Role = 'server' | 'client';

export interface TlsCredentials {
  /** PEM text. */
  ca: string;
  cert: string;
  key: string;
}

export interface SessionOptions {
  role: Role;
  clock: Clock;
  /** Sends one control packet to the peer. */
  send(packet: Buffer): void;
  tls: TlsCredentials;
  /** OpenVPN's remote-cert-tls: the peer's certificate must have the extended key usage of this role. */
  remoteCertTls?: 'server' | 'client';
  /** OpenVPN's verify-x509-name: the peer certificate's subject or CN must match. */
  verifyX509Name?: VerifyX509Name;
  /** tls-version-min: the lowest TLS version either side may settle on (node's floor is 1.2 anyway). */
  tlsVersionMin?: '1.2' | '1.3';
  /** tls-cipher: the TLS 1.2 cipher list (OpenSSL syntax); default node's. */
  tlsCipher?: string;
  /** tls-ciphersuites: the TLS 1.3 suites; default node's. */
  tlsCiphersuites?: string;
  /** data-ciphers, in order of preference. */
  ciphers: readonly string[];
  /** data-ciphers-fallback: used when the peer announces no cipher list. */
  fallbackCipher?: string;
  /** Announce IV_PROTO_TLS_KEY_EXPORT (default true); without it the peer falls back to the PRF. */
  exporter?: boolean;
  /** The options string of key method 2 (OpenVPN only compares it for a warning). */
  optionsString?: string;
  /** What IV_VER says. */
  version?: string;
  /** The TLS handshake and key exchange must finish within this (hand-window), default 60 s. */
  handWindowMs?: number;
  /** Retransmission timeout of the reliability layer (tls-timeout), default 2 s. */
  initialTimeoutMs?: number;
  /**
   * Server only: OpenVPN's `mode server` for pull clients (`client` / `pull`) instead of P2P
   * negotiation. We pick the cipher (our first that the client lists in IV_CIPHERS) and the
   * peer-id, and answer each PUSH_REQUEST with a PUSH_REPLY of these options followed by
   * peer-id, cipher and, with exporter keys, key-derivation tls-ekm.
   */
  push?: PushOptions | (() => PushOptions);
  /**
   * Client only: OpenVPN's `client` / `pull`. We announce REQUEST_PUSH and IV_NCP instead of
   * P2P negotiation, ask with PUSH_REQUEST, and take cipher, peer-id and key derivation from
   * the PUSH_REPLY (whose options `established` carries, for addresses and routes).
   */
  pull?: boolean;
  /** tls-auth or tls-crypt: packets that do not authenticate are dropped without an answer. */
  wrap?: ControlWrap;
  /** Sees every control packet in and out as on the wire (debugging, and capturing test vectors). */
  trace?(direction: 'in' | 'out', packet: Buffer): void;
  /** Receives the TLS key log lines (NSS format), as SSLKEYLOGFILE would. */
  keylog?(line: Buffer): void;
}

export interface PushOptions {
  peerId: number;
  /** Pushed as given, e.g. `ifconfig 10.8.0.2 255.255.255.0`, `topology subnet`, `ping 10`. */
  options: readonly string[];
}

export interface Established {
  keyId: number;
  cipher: CipherAlg;
  peerId: number;
  keyMethod: 'exporter' | 'prf';
  keys: DirectionKeys;
  /** The peer's peer-info variables. */
  peerInfo: Map<string, string>;
  /** The peer certificate's subject CN, when it has one. */
  commonName?: string;
  /** Pull client: the options of the server's PUSH_REPLY (ifconfig, route, ping, ...). */
  pushed?: string[];
}

export interface SessionEvents {
  /** Keys for a key-id: the first (key-id 0), then each renegotiated one. */
  established: [Established];
  /** A renegotiated key-id may now carry our traffic: the peer has acked our half of its exchange. */
  active: [number];
  /** A plaintext control message after key exchange (PUSH_REQUEST, ...), without its NUL. */
  message: [string];
  /** Server with push: a PUSH_REPLY went out (the text sent). */
  pushed: [string];
  error: [Error];
}

export interface SessionStats {
  malformed: number;
  /** Packets that failed tls-auth/tls-crypt (or replayed their packet-id): dropped silently. */
  unauthenticated: number;
  /** Packets whose session ids did not belong to this session. */
  foreign: number;
}

const TICK_MS = 100;
const DEFAULT_HAND_WINDOW_MS = 60_000;
const DEFAULT_IV_VER = '2.6.14';

/** Key-ids after the first go 1 to 7 and around again; 0 is only ever the first. */
export function nextKeyId(keyId: number): number {
  return (keyId % 7) + 1;
}

/** What the first key fixed for the session's lifetime: renegotiations keep it. */
interface Negotiated {
  cipher: CipherAlg;
  useExporter: boolean;
  peerId: number;
  peerInfo: Map<string, string>;
  pushed?: string[];
  /** The peer takes an EXIT control message as our goodbye (OpenVPN's cc-exit). */
  ccExit: boolean;
}

/**
 * One key state: a key-id with its own message ids and reliability, its own TLS session and key
 * method 2 exchange. Key-id 0 starts with the hard resets; each renegotiation starts another
 * with P_CONTROL_SOFT_RESET_V1 under the next key-id.
 */
class KeyState {
  readonly reliable: ReliableLink;
  readonly stream: ControlStream;
  tls: TLSSocket | undefined;
  plaintext = Buffer.alloc(0);
  ours: KeyMethod2 | undefined;
  theirs: KeyMethod2 | undefined;
  /** Keys derived and handed out. */
  done = false;
  /** Renegotiated keys: announced as active once our key method message was acked. */
  activated = false;
  /** We sent the soft reset that started this key. */
  initiated = false;
  /** Our key method message has been handed to the reliability layer (TLS writes later than asked). */
  keySent = false;
  readonly startedAt: number;

  constructor(
    readonly keyId: number,
    clock: Clock,
    initialTimeoutMs: number | undefined,
    deliver: (ks: KeyState, opcode: ControlOpcode, payload: Buffer) => void,
    onTlsBytes: () => void,
  ) {
    this.startedAt = clock.now();
    const options: ConstructorParameters<typeof ReliableLink>[0] = {
      clock,
      deliver: (opcode, payload) => deliver(this, opcode, payload),
    };
    if (initialTimeoutMs !== undefined) options.initialTimeoutMs = initialTimeoutMs;
    this.reliable = new ReliableLink(options);
    this.stream = new ControlStream((chunk) => {
      this.reliable.send(Opcode.CONTROL_V1, Buffer.from(chunk));
      onTlsBytes();
    });
  }

  close(): void {
    this.stream.close();
    this.tls?.destroy();
  }
}

/** How long a failed session goes on sending and acknowledging what it already wrote. */
const FAIL_LINGER_MS = 2_000;

export class ControlSession extends EventEmitter<SessionEvents> {
  readonly sessionId = randomBytes(SESSION_ID_SIZE);
  remoteSessionId: Buffer | undefined;
  readonly stats: SessionStats = { malformed: 0, unauthenticated: 0, foreign: 0 };
  /** By key-id: the current state, and the one before it while it may still carry acks. */
  private readonly states = new Map<number, KeyState>();
  private current: KeyState;
  private negotiated: Negotiated | undefined;
  private timer: Timer | undefined;
  /** Server with push: what each PUSH_REQUEST gets, once negotiated. */
  private pushReply: string | undefined;
  /** Pull client: the server's peer-info, kept until its PUSH_REPLY completes the negotiation. */
  private awaitingPush: Map<string, string> | undefined;
  private closed = false;
  /** fail() was called: closing once what was written has gone out. */
  private failed = false;

  constructor(private readonly options: SessionOptions) {
    super();
    this.current = this.newState(0);
  }

  /** Starts the timer; a client also sends its hard reset. */
  start(): void {
    this.timer = this.options.clock.every(TICK_MS, () => this.tick());
    if (this.options.role === 'client') {
      this.current.reliable.send(Opcode.CONTROL_HARD_RESET_CLIENT_V2, Buffer.alloc(0));
      this.pump();
    }
  }

  /** A control packet from the peer. */
  receive(data: Uint8Array): void {
    if (this.closed) return;
    const wire = Buffer.from(data);
    this.options.trace?.('in', wire);
    let packet: ReturnType<typeof decodeControlBody>;
    try {
      const h = decodeHeader(wire);
      const plain = this.options.wrap === undefined ? wire : this.options.wrap.unwrap(wire);
      if (plain === undefined) {
        this.stats.unauthenticated++;
        return;
      }
      packet = decodeControlBody(h.opcode, h.keyId, h.sessionId, plain.subarray(1 + SESSION_ID_SIZE));
    } catch (error) {
      if (!(error instanceof ControlPacketError)) throw error;
      this.stats.malformed++;
      return;
    }
    const expectReset =
      this.options.role === 'server' ? Opcode.CONTROL_HARD_RESET_CLIENT_V2 : Opcode.CONTROL_HARD_RESET_SERVER_V2;
    if (this.remoteSessionId === undefined && packet.opcode === expectReset) this.remoteSessionId = packet.sessionId;
    if (this.remoteSessionId === undefined || !packet.sessionId.equals(this.remoteSessionId)) {
      this.stats.foreign++;
      return;
    }
    if (packet.remoteSessionId !== undefined && !packet.remoteSessionId.equals(this.sessionId)) {
      this.stats.foreign++;
      return;
    }
    let ks = this.states.get(packet.keyId);
    if (
      ks === undefined &&
      packet.opcode === Opcode.CONTROL_SOFT_RESET_V1 &&
      this.current.done &&
      packet.keyId === nextKeyId(this.current.keyId)
    )
      ks = this.renegotiate(packet.keyId);
    if (ks === undefined) {
      this.stats.foreign++;
      return;
    }
    if (packet.remoteSessionId !== undefined) ks.reliable.acked(packet.acks);
    if (packet.messageId !== undefined) ks.reliable.receive(packet.opcode, packet.messageId, packet.payload);
    this.pump();
  }

  /** Stops timers and TLS; nothing more is sent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    for (const ks of this.states.values()) ks.close();
  }

  /** Sends a plaintext control message (e.g. PUSH_REPLY) through TLS, NUL-terminated as OpenVPN does. */
  sendMessage(text: string): void {
    const { tls, done } = this.current;
    if (!done || tls === undefined) throw new Error('the session has not finished its key exchange');
    tls.write(Buffer.from(`${text}\0`));
  }

  /**
   * explicit-exit-notify: tells a peer that negotiated cc-exit that we are leaving, by the EXIT
   * control message OpenVPN 2.6 sends. False when it did not (OpenVPN would send its OCC exit
   * message inside the data channel instead, which we do not have) or nothing is established.
   */
  sendExit(): boolean {
    if (this.closed || this.failed || this.negotiated?.ccExit !== true || !this.current.done) return false;
    this.sendMessage('EXIT');
    return true;
  }

  /**
   * Starts a renegotiation ourselves (reneg-sec, or packet-ids running out): a soft reset under
   * the next key-id. The new keys arrive as `established`, then `active`.
   */
  rekey(): void {
    if (this.closed || !this.current.done) throw new Error('only an established session can renegotiate');
    const ks = this.renegotiate(nextKeyId(this.current.keyId));
    ks.initiated = true;
    ks.reliable.send(Opcode.CONTROL_SOFT_RESET_V1, Buffer.alloc(0));
    this.pump();
  }

  /**
   * Everything we sent has been acknowledged, what TLS still holds included (an EXIT or RESTART
   * message just written), or the session is closed: nothing left to resend.
   */
  get settled(): boolean {
    return this.closed || [...this.states.values()].every((ks) => ks.reliable.idle() && ks.stream.writableLength === 0);
  }

  /** The reliability counters of all key states together. */
  get reliableStats(): ReliableStats {
    const sum: ReliableStats = { sent: 0, retransmits: 0, received: 0, duplicates: 0, outOfWindow: 0 };
    for (const ks of this.retired.concat([...this.states.values()]))
      for (const k of Object.keys(sum) as (keyof ReliableStats)[]) sum[k] += ks.reliable.stats[k];
    return sum;
  }

  /** States dropped from the map, kept only so their counters still add up. */
  private readonly retired: KeyState[] = [];

  private newState(keyId: number): KeyState {
    const ks = new KeyState(
      keyId,
      this.options.clock,
      this.options.initialTimeoutMs,
      (state, opcode, payload) => this.deliver(state, opcode, payload),
      () => this.pump(),
    );
    this.states.set(keyId, ks);
    return ks;
  }

  /**
   * The peer starts a new key (P_CONTROL_SOFT_RESET_V1 under a new key-id): a fresh key state
   * whose TLS session and key exchange run beside the current key, which keeps carrying data.
   * Only the state before it stays, for the acks still in flight.
   */
  private renegotiate(keyId: number): KeyState {
    for (const [id, ks] of this.states) {
      if (ks === this.current) continue;
      ks.close();
      this.states.delete(id);
      this.retired.push(ks);
    }
    const ks = this.newState(keyId);
    this.current = ks;
    return ks;
  }

  private tick(): void {
    if (this.closed) return;
    const ks = this.current;
    if (!ks.done && this.options.clock.now() - ks.startedAt > (this.options.handWindowMs ?? DEFAULT_HAND_WINDOW_MS)) {
      this.fail(new Error(`TLS key negotiation (key-id ${ks.keyId}) did not finish within the hand-window`));
      return;
    }
    this.pump();
  }

  private pump(): void {
    if (this.closed) return;
    for (const ks of this.states.values()) {
      for (const frame of ks.reliable.flush()) {
        const packet: Parameters<typeof encodeControlPacket>[0] = {
          opcode: frame.opcode,
          keyId: ks.keyId,
          sessionId: this.sessionId,
          acks: frame.acks,
          payload: frame.payload,
        };
        if (frame.acks.length > 0) packet.remoteSessionId = this.remoteSessionId!;
        if (frame.messageId !== undefined) packet.messageId = frame.messageId;
        const plain = encodeControlPacket(packet);
        const bytes = this.options.wrap === undefined ? plain : this.options.wrap.wrap(plain);
        this.options.trace?.('out', bytes);
        this.options.send(bytes);
      }
      // A new key carries our traffic once the peer has our key method message, as OpenVPN waits too.
      if (ks.done && ks.keySent && !ks.activated && ks.reliable.idle()) {
        ks.activated = true;
        if (ks.keyId !== 0) this.emit('active', ks.keyId);
      }
    }
  }

  private deliver(ks: KeyState, opcode: ControlOpcode, payload: Buffer): void {
    const { role } = this.options;
    if (opcode === Opcode.CONTROL_HARD_RESET_CLIENT_V2 && role === 'server' && ks.keyId === 0 && ks.tls === undefined) {
      ks.reliable.send(Opcode.CONTROL_HARD_RESET_SERVER_V2, Buffer.alloc(0));
      this.startTls(ks);
    } else if (
      opcode === Opcode.CONTROL_HARD_RESET_SERVER_V2 &&
      role === 'client' &&
      ks.keyId === 0 &&
      ks.tls === undefined
    ) {
      this.startTls(ks);
    } else if (opcode === Opcode.CONTROL_SOFT_RESET_V1 && ks.keyId !== 0 && ks.tls === undefined) {
      // Whoever started this key, each side sends one soft reset; then TLS runs as the first time.
      if (!ks.initiated) ks.reliable.send(Opcode.CONTROL_SOFT_RESET_V1, Buffer.alloc(0));
      this.startTls(ks);
    } else if (opcode === Opcode.CONTROL_V1 && ks.tls !== undefined) {
      ks.stream.fromPeer(payload);
    }
  }

  private startTls(ks: KeyState): void {
    const { tls: creds, role } = this.options;
    const context = { ca: creds.ca, cert: creds.cert, key: creds.key, ...tlsLimits(this.options) };
    let tls: TLSSocket;
    if (role === 'server') {
      tls = new TLSSocket(ks.stream, {
        isServer: true,
        secureContext: createSecureContext(context),
        requestCert: true,
        rejectUnauthorized: true,
      });
      tls.once('secure', () => this.secured(ks));
    } else {
      tls = connect({
        socket: ks.stream,
        ...context,
        rejectUnauthorized: true,
        // OpenVPN checks names only when told to (verify-x509-name); the CA decides.
        checkServerIdentity: () => undefined,
      });
      tls.once('secureConnect', () => this.secured(ks));
    }
    ks.tls = tls;
    const { keylog } = this.options;
    if (keylog !== undefined) tls.on('keylog', (line: Buffer) => keylog(line));
    tls.on('error', (error: Error) => this.fail(error));
    tls.on('data', (chunk: Buffer) => this.plaintextIn(ks, chunk));
  }

  private secured(ks: KeyState): void {
    if (this.failed) return;
    const peer = ks.tls!.getPeerCertificate(true);
    const { verifyX509Name } = this.options;
    const why =
      verifyPeerChain(peer, parseCaBundle(this.options.tls.ca), this.options.remoteCertTls) ??
      (verifyX509Name === undefined ? undefined : checkX509Name(peer, verifyX509Name));
    if (why !== undefined) {
      this.fail(new Error(`peer certificate refused: ${why}`));
      return;
    }
    if (this.options.role === 'client') this.writeKeyMethod2(ks);
  }

  private writeKeyMethod2(ks: KeyState): void {
    const client = this.options.role === 'client';
    const pull = client && this.options.pull === true;
    // Like OpenVPN 2.6 we can say goodbye on the control channel (EXIT), so we announce it.
    const ivProto =
      IvProto.DATA_V2 |
      IvProto.CC_EXIT_NOTIFY |
      (pull ? IvProto.REQUEST_PUSH : IvProto.NCP_P2P) |
      (this.options.exporter === false ? 0 : IvProto.TLS_KEY_EXPORT);
    const source = client
      ? {
          preMaster: randomBytes(PRE_MASTER_SIZE),
          random1: randomBytes(RANDOM_SIZE),
          random2: randomBytes(RANDOM_SIZE),
        }
      : { random1: randomBytes(RANDOM_SIZE), random2: randomBytes(RANDOM_SIZE) };
    ks.ours = {
      source,
      options:
        this.options.optionsString ?? defaultOptionsString(this.options.role, this.options.ciphers[0] ?? 'AES-256-GCM'),
      username: '',
      password: '',
      // An OpenVPN server in `mode server` sends no peer-info: its choices go in the PUSH_REPLY.
      peerInfo:
        this.options.push !== undefined
          ? ''
          : buildPeerInfo({
              version: this.options.version ?? DEFAULT_IV_VER,
              ciphers: this.options.ciphers,
              ivProto,
              // A pull client also says it takes the server's cipher choice (NCP, version 2).
              extra: { IV_PLAT: 'linux', IV_TCPNL: '1', ...(pull ? { IV_NCP: '2' } : {}) },
            }),
    };
    ks.tls!.write(encodeKeyMethod2(ks.ours, client), () => {
      ks.keySent = true;
      this.pump();
    });
  }

  private plaintextIn(ks: KeyState, chunk: Buffer): void {
    // A failed session only finishes sending what it wrote; nothing it reads counts any more.
    if (this.failed) return;
    ks.plaintext = Buffer.concat([ks.plaintext, chunk]);
    if (ks.theirs !== undefined) {
      for (let nul = ks.plaintext.indexOf(0); nul >= 0; nul = ks.plaintext.indexOf(0)) {
        const text = ks.plaintext.subarray(0, nul).toString('utf8');
        ks.plaintext = ks.plaintext.subarray(nul + 1);
        this.messageIn(text);
      }
      return;
    }
    try {
      ks.theirs = decodeKeyMethod2(ks.plaintext, this.options.role === 'server');
    } catch (error) {
      // One TLS record carries the whole message in practice; a short read waits for more.
      if (ks.plaintext.length > 8192) this.fail(error as Error);
      return;
    }
    ks.plaintext = Buffer.alloc(0);
    if (this.options.role === 'server') this.writeKeyMethod2(ks);
    if (this.negotiated === undefined) this.finish(ks);
    else this.complete(ks, this.negotiated);
  }

  private messageIn(text: string): void {
    if (text.startsWith('PUSH_REPLY,') && this.awaitingPush !== undefined) {
      const peerInfo = this.awaitingPush;
      this.awaitingPush = undefined;
      this.pushReplyIn(text, peerInfo);
    } else if (text === 'PUSH_REQUEST' && this.pushReply !== undefined) {
      this.sendMessage(this.pushReply);
      this.emit('pushed', this.pushReply);
    } else if (text.length > 0) this.emit('message', text);
  }

  /** Key method 2 went both ways on the first key: negotiate (P2P or as a pushing server), or ask for the push. */
  private finish(ks: KeyState): void {
    const server = this.options.role === 'server';
    const peerInfo = parsePeerInfo(ks.theirs!.peerInfo);
    if (!server && this.options.pull === true) {
      // The server may push by itself (we announce REQUEST_PUSH); asking covers older ones.
      ks.tls!.write(Buffer.from('PUSH_REQUEST\0'));
      this.awaitingPush = peerInfo;
      return;
    }
    const ivProto = ivProtoOf(peerInfo);
    const remoteCiphers = peerInfo.get('IV_CIPHERS')?.split(':');
    let push: PushOptions | undefined;
    try {
      // A function: the server hands out its peer-id and address only to a client this far.
      push = typeof this.options.push === 'function' ? this.options.push() : this.options.push;
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    let cipher: string | undefined;
    if (push !== undefined && server && remoteCiphers !== undefined)
      cipher = commonCipher(this.options.ciphers, remoteCiphers);
    else if (remoteCiphers !== undefined && ivProto & IvProto.NCP_P2P)
      cipher = server
        ? commonCipher(this.options.ciphers, remoteCiphers)
        : commonCipher(remoteCiphers, this.options.ciphers);
    else cipher = this.options.fallbackCipher;
    const name = this.checkCipher(cipher, remoteCiphers?.join(':') ?? '(none announced)');
    if (name === undefined) return;
    if (!(ivProto & IvProto.DATA_V2)) {
      this.fail(new Error('the peer does not speak P_DATA_V2, which our data channel needs'));
      return;
    }
    const useExporter = this.options.exporter !== false && (ivProto & IvProto.TLS_KEY_EXPORT) !== 0;
    const peerId = push !== undefined && server ? push.peerId : useExporter ? p2pPeerId(ks.tls!) : P2P_FIXED_PEER_ID;
    if (push !== undefined && server) {
      this.pushReply = [
        'PUSH_REPLY',
        ...push.options,
        `peer-id ${peerId}`,
        `cipher ${name}`,
        ...protocolFlags((ivProto & IvProto.CC_EXIT_NOTIFY) !== 0, useExporter),
      ].join(',');
    }
    const ccExit = (ivProto & IvProto.CC_EXIT_NOTIFY) !== 0;
    this.negotiated = { cipher: name, useExporter, peerId, peerInfo, ccExit };
    this.complete(ks, this.negotiated);
  }

  /** Pull client: the server's PUSH_REPLY names the cipher, the peer-id and the key derivation. */
  private pushReplyIn(text: string, peerInfo: Map<string, string>): void {
    const pushed = text
      .slice('PUSH_REPLY,'.length)
      .split(',')
      .filter((o) => o.length > 0);
    const value = (name: string) => pushed.find((o) => o.startsWith(`${name} `))?.slice(name.length + 1);
    const peerId = Number.parseInt(value('peer-id') ?? '', 10);
    if (!Number.isInteger(peerId) || peerId < 0 || peerId > 0xffffff) {
      this.fail(new Error(`the server pushed no usable peer-id, which P_DATA_V2 needs: ${text}`));
      return;
    }
    const cipher = value('cipher') ?? this.options.fallbackCipher;
    const listed = cipher !== undefined && commonCipher([cipher], this.options.ciphers) !== undefined;
    const name = this.checkCipher(listed ? cipher : undefined, `pushed ${cipher ?? '(none)'}`);
    if (name === undefined) return;
    const flags = value('protocol-flags')?.split(' ') ?? [];
    const ekm = value('key-derivation') === 'tls-ekm' || flags.includes('tls-ekm');
    const useExporter = ekm && this.options.exporter !== false;
    this.negotiated = { cipher: name, useExporter, peerId, peerInfo, pushed, ccExit: flags.includes('cc-exit') };
    this.complete(this.current, this.negotiated);
  }

  private checkCipher(cipher: string | undefined, theirs: string): CipherAlg | undefined {
    const name = cipher?.toUpperCase();
    if (name === undefined || !isCipherAlg(name) || name === 'NONE') {
      this.fail(new Error(`no common data cipher: ours ${this.options.ciphers.join(':')}, the peer's ${theirs}`));
      return undefined;
    }
    return name;
  }

  /** Derives this key state's data-channel keys with what the session negotiated, and hands them out. */
  private complete(ks: KeyState, n: Negotiated): void {
    const server = this.options.role === 'server';
    const [theirs, ours, tls] = [ks.theirs!, ks.ours!, ks.tls!];
    const key2 = n.useExporter
      ? key2FromExporter(tls)
      : key2FromPrf({
          client: server ? theirs.source : ours.source,
          server: server ? ours.source : theirs.source,
          clientSessionId: server ? this.remoteSessionId! : this.sessionId,
          serverSessionId: server ? this.sessionId : this.remoteSessionId!,
        });
    const established: Established = {
      keyId: ks.keyId,
      cipher: n.cipher,
      peerId: n.peerId,
      keyMethod: n.useExporter ? 'exporter' : 'prf',
      keys: directionKeys(key2, n.cipher, server),
      peerInfo: n.peerInfo,
    };
    if (n.pushed !== undefined) established.pushed = n.pushed;
    const cn = tls.getPeerCertificate()?.subject?.CN;
    if (typeof cn === 'string') established.commonName = cn;
    ks.done = true;
    this.emit('established', established);
    this.pump();
  }

  /**
   * Ends the session with an error. What TLS was given last (our key method message, which
   * tells the peer our side of a failed negotiation) reaches the reliability layer a tick after
   * it was written, and must be acknowledged to be sure it arrived: the session lingers for
   * FAIL_LINGER_MS, still sending and acknowledging, before it closes.
   */
  private fail(error: Error): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    this.emit('error', error);
    this.options.clock.after(FAIL_LINGER_MS, () => this.close());
  }
}

/**
 * How a server tells a pull client its protocol options, as OpenVPN 2.6 does: a client that can
 * leave by a control-channel EXIT message gets `protocol-flags cc-exit [tls-ekm]` (then it says
 * goodbye on the control channel, which our data channel cannot see); an older one only
 * `key-derivation tls-ekm` when the keys come from the exporter.
 */
export function protocolFlags(ccExit: boolean, exporter: boolean): string[] {
  if (ccExit) return [`protocol-flags cc-exit${exporter ? ' tls-ekm' : ''}`];
  return exporter ? ['key-derivation tls-ekm'] : [];
}

/** node:tls settings for tls-version-min, tls-cipher and tls-ciphersuites; node's defaults for what is not given. */
export function tlsLimits(options: Pick<SessionOptions, 'tlsVersionMin' | 'tlsCipher' | 'tlsCiphersuites'>): {
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  ciphers?: string;
} {
  const out: { minVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string } = {};
  if (options.tlsVersionMin !== undefined) out.minVersion = `TLSv${options.tlsVersionMin}`;
  if (options.tlsCipher !== undefined || options.tlsCiphersuites !== undefined) {
    // node takes both lists in one string, telling TLS 1.3 suites by their TLS_ prefix.
    const defaults = DEFAULT_CIPHERS.split(':');
    const v13 = options.tlsCiphersuites ?? defaults.filter((c) => c.startsWith('TLS_')).join(':');
    const v12 = options.tlsCipher ?? defaults.filter((c) => !c.startsWith('TLS_')).join(':');
    out.ciphers = [v13, v12].filter((list) => list !== '').join(':');
  }
  return out;
}

/** OpenVPN's options string for a P2P TLS tunnel over UDP with an AEAD cipher. */
export function defaultOptionsString(role: Role, cipher: string): string {
  const keysize = cipher.toUpperCase().startsWith('AES-128') ? 128 : 256;
  return `V4,dev-type tun,link-mtu 1549,tun-mtu 1500,proto UDPv4,cipher ${cipher},auth [null-digest],keysize ${keysize},key-method 2,tls-${role}`;
}
