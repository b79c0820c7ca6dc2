/**
 * One OpenVPN TLS session (key-id 0) in either role: the reset exchange that pairs session ids,
 * TLS (node:tls) over the reliability layer, key method 2 both ways, and then the data-channel
 * parameters: cipher (P2P negotiation: the tls-server's first cipher the client also has),
 * peer-id, and keys by the exporter when the peer announces it, else by OpenVPN's PRF.
 *
 * Bytes in and out are whole control packets without tls-auth or tls-crypt wrapping; the owner
 * moves them (OvpnInterface packet-ntf and sendPacket, or anything else).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, createSecureContext, TLSSocket } from 'node:tls';
import { type CipherAlg, isCipherAlg } from '../core/cipher.js';
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
  Opcode,
  SESSION_ID_SIZE,
} from './packet.js';
import { ReliableLink } from './reliable.js';
import { ControlStream } from './tls-duplex.js';
import type { ControlWrap } from './tls-wrap.js';
import { parseCaBundle, verifyPeerChain } from './verify.js';

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
  push?: PushOptions;
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
  established: [Established];
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

export class ControlSession extends EventEmitter<SessionEvents> {
  readonly sessionId = randomBytes(SESSION_ID_SIZE);
  remoteSessionId: Buffer | undefined;
  readonly stats: SessionStats = { malformed: 0, unauthenticated: 0, foreign: 0 };
  private readonly reliable: ReliableLink;
  private readonly stream: ControlStream;
  private tls: TLSSocket | undefined;
  private timer: Timer | undefined;
  private readonly startedAt: number;
  private plaintext = Buffer.alloc(0);
  private ours: KeyMethod2 | undefined;
  private theirs: KeyMethod2 | undefined;
  private done = false;
  /** Server with push: what each PUSH_REQUEST gets, once negotiated. */
  private pushReply: string | undefined;
  /** Pull client: the server's peer-info, kept until its PUSH_REPLY completes the negotiation. */
  private awaitingPush: Map<string, string> | undefined;
  private closed = false;

  constructor(private readonly options: SessionOptions) {
    super();
    this.startedAt = options.clock.now();
    const reliable: ConstructorParameters<typeof ReliableLink>[0] = {
      clock: options.clock,
      deliver: (opcode, payload) => this.deliver(opcode, payload),
    };
    if (options.initialTimeoutMs !== undefined) reliable.initialTimeoutMs = options.initialTimeoutMs;
    this.reliable = new ReliableLink(reliable);
    this.stream = new ControlStream((chunk) => {
      this.reliable.send(Opcode.CONTROL_V1, Buffer.from(chunk));
      this.pump();
    });
  }

  /** Starts the timer; a client also sends its hard reset. */
  start(): void {
    this.timer = this.options.clock.every(TICK_MS, () => this.tick());
    if (this.options.role === 'client') {
      this.reliable.send(Opcode.HARD_RESET_CLIENT_V2, Buffer.alloc(0));
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
    const expectReset = this.options.role === 'server' ? Opcode.HARD_RESET_CLIENT_V2 : Opcode.HARD_RESET_SERVER_V2;
    if (this.remoteSessionId === undefined && packet.opcode === expectReset) this.remoteSessionId = packet.sessionId;
    if (this.remoteSessionId === undefined || !packet.sessionId.equals(this.remoteSessionId)) {
      this.stats.foreign++;
      return;
    }
    if (packet.remoteSessionId !== undefined) {
      if (!packet.remoteSessionId.equals(this.sessionId)) {
        this.stats.foreign++;
        return;
      }
      this.reliable.acked(packet.acks);
    }
    if (packet.messageId !== undefined) this.reliable.receive(packet.opcode, packet.messageId, packet.payload);
    this.pump();
  }

  /** Stops timers and TLS; nothing more is sent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.stream.close();
    this.tls?.destroy();
  }

  /** Sends a plaintext control message (e.g. PUSH_REPLY) through TLS, NUL-terminated as OpenVPN does. */
  sendMessage(text: string): void {
    if (!this.done || this.tls === undefined) throw new Error('the session has not finished its key exchange');
    this.tls.write(Buffer.from(`${text}\0`));
  }

  get reliableStats() {
    return this.reliable.stats;
  }

  private tick(): void {
    if (this.closed) return;
    if (
      !this.done &&
      this.options.clock.now() - this.startedAt > (this.options.handWindowMs ?? DEFAULT_HAND_WINDOW_MS)
    ) {
      this.fail(new Error('TLS key negotiation did not finish within the hand-window'));
      return;
    }
    this.pump();
  }

  private pump(): void {
    if (this.closed) return;
    for (const frame of this.reliable.flush()) {
      const packet: Parameters<typeof encodeControlPacket>[0] = {
        opcode: frame.opcode,
        keyId: 0,
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
  }

  private deliver(opcode: ControlOpcode, payload: Buffer): void {
    if (opcode === Opcode.HARD_RESET_CLIENT_V2 && this.options.role === 'server' && this.tls === undefined) {
      this.reliable.send(Opcode.HARD_RESET_SERVER_V2, Buffer.alloc(0));
      this.startTls();
    } else if (opcode === Opcode.HARD_RESET_SERVER_V2 && this.options.role === 'client' && this.tls === undefined) {
      this.startTls();
    } else if (opcode === Opcode.CONTROL_V1 && this.tls !== undefined) {
      this.stream.fromPeer(payload);
    }
    // Renegotiation (P_CONTROL_SOFT_RESET_V1) is not spoken yet: such messages are acked and dropped.
  }

  private startTls(): void {
    const { tls: creds, role } = this.options;
    if (role === 'server') {
      this.tls = new TLSSocket(this.stream, {
        isServer: true,
        secureContext: createSecureContext({ ca: creds.ca, cert: creds.cert, key: creds.key }),
        requestCert: true,
        rejectUnauthorized: true,
      });
      this.tls.once('secure', () => this.secured());
    } else {
      this.tls = connect({
        socket: this.stream,
        ca: creds.ca,
        cert: creds.cert,
        key: creds.key,
        rejectUnauthorized: true,
        // OpenVPN checks names only when told to (verify-x509-name); the CA decides.
        checkServerIdentity: () => undefined,
      });
      this.tls.once('secureConnect', () => this.secured());
    }
    const { keylog } = this.options;
    if (keylog !== undefined) this.tls.on('keylog', (line: Buffer) => keylog(line));
    this.tls.on('error', (error: Error) => this.fail(error));
    this.tls.on('data', (chunk: Buffer) => this.plaintextIn(chunk));
  }

  private secured(): void {
    const why = verifyPeerChain(this.tls!.getPeerCertificate(true), parseCaBundle(this.options.tls.ca));
    if (why !== undefined) {
      this.fail(new Error(`peer certificate refused: ${why}`));
      return;
    }
    if (this.options.role === 'client') this.writeKeyMethod2();
  }

  private writeKeyMethod2(): void {
    const client = this.options.role === 'client';
    const pull = client && this.options.pull === true;
    const ivProto =
      IvProto.DATA_V2 |
      (pull ? IvProto.REQUEST_PUSH : IvProto.NCP_P2P) |
      (this.options.exporter === false ? 0 : IvProto.TLS_KEY_EXPORT);
    const source = client
      ? {
          preMaster: randomBytes(PRE_MASTER_SIZE),
          random1: randomBytes(RANDOM_SIZE),
          random2: randomBytes(RANDOM_SIZE),
        }
      : { random1: randomBytes(RANDOM_SIZE), random2: randomBytes(RANDOM_SIZE) };
    this.ours = {
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
    this.tls!.write(encodeKeyMethod2(this.ours, client));
  }

  private plaintextIn(chunk: Buffer): void {
    if (this.theirs !== undefined) {
      this.plaintext = Buffer.concat([this.plaintext, chunk]);
      for (let nul = this.plaintext.indexOf(0); nul >= 0; nul = this.plaintext.indexOf(0)) {
        const text = this.plaintext.subarray(0, nul).toString('utf8');
        this.plaintext = this.plaintext.subarray(nul + 1);
        if (text.startsWith('PUSH_REPLY,') && this.awaitingPush !== undefined) {
          const peerInfo = this.awaitingPush;
          this.awaitingPush = undefined;
          this.pushReplyIn(text, peerInfo);
        } else if (text === 'PUSH_REQUEST' && this.pushReply !== undefined) {
          this.sendMessage(this.pushReply);
          this.emit('pushed', this.pushReply);
        } else if (text.length > 0) this.emit('message', text);
      }
      return;
    }
    this.plaintext = Buffer.concat([this.plaintext, chunk]);
    try {
      this.theirs = decodeKeyMethod2(this.plaintext, this.options.role === 'server');
    } catch (error) {
      // One TLS record carries the whole message in practice; a short read waits for more.
      if (this.plaintext.length > 8192) this.fail(error as Error);
      return;
    }
    this.plaintext = Buffer.alloc(0);
    if (this.options.role === 'server') this.writeKeyMethod2();
    this.finish();
  }

  /** Key method 2 went both ways: negotiate (P2P or as a pushing server), or ask for the push. */
  private finish(): void {
    const server = this.options.role === 'server';
    const peerInfo = parsePeerInfo(this.theirs!.peerInfo);
    if (!server && this.options.pull === true) {
      // The server may push by itself (we announce REQUEST_PUSH); asking covers older ones.
      this.tls!.write(Buffer.from('PUSH_REQUEST\0'));
      this.awaitingPush = peerInfo;
      return;
    }
    const ivProto = ivProtoOf(peerInfo);
    const remoteCiphers = peerInfo.get('IV_CIPHERS')?.split(':');
    const { push } = this.options;
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
    const peerId = push !== undefined && server ? push.peerId : useExporter ? p2pPeerId(this.tls!) : P2P_FIXED_PEER_ID;
    if (push !== undefined && server) {
      const negotiated = [`peer-id ${peerId}`, `cipher ${name}`, ...(useExporter ? ['key-derivation tls-ekm'] : [])];
      this.pushReply = ['PUSH_REPLY', ...push.options, ...negotiated].join(',');
    }
    this.complete(name, useExporter, peerId, peerInfo);
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
    const ekm =
      value('key-derivation') === 'tls-ekm' || (value('protocol-flags')?.split(' ').includes('tls-ekm') ?? false);
    this.complete(name, ekm && this.options.exporter !== false, peerId, peerInfo, pushed);
  }

  private checkCipher(cipher: string | undefined, theirs: string): CipherAlg | undefined {
    const name = cipher?.toUpperCase();
    if (name === undefined || !isCipherAlg(name) || name === 'NONE') {
      this.fail(new Error(`no common data cipher: ours ${this.options.ciphers.join(':')}, the peer's ${theirs}`));
      return undefined;
    }
    return name;
  }

  private complete(
    cipher: CipherAlg,
    useExporter: boolean,
    peerId: number,
    peerInfo: Map<string, string>,
    pushed?: string[],
  ): void {
    const server = this.options.role === 'server';
    const [theirs, ours, tls] = [this.theirs!, this.ours!, this.tls!];
    const key2 = useExporter
      ? key2FromExporter(tls)
      : key2FromPrf({
          client: server ? theirs.source : ours.source,
          server: server ? ours.source : theirs.source,
          clientSessionId: server ? this.remoteSessionId! : this.sessionId,
          serverSessionId: server ? this.sessionId : this.remoteSessionId!,
        });
    const established: Established = {
      keyId: 0,
      cipher,
      peerId,
      keyMethod: useExporter ? 'exporter' : 'prf',
      keys: directionKeys(key2, cipher, server),
      peerInfo,
    };
    if (pushed !== undefined) established.pushed = pushed;
    const cn = tls.getPeerCertificate()?.subject?.CN;
    if (typeof cn === 'string') established.commonName = cn;
    this.done = true;
    this.emit('established', established);
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.close();
    this.emit('error', error);
  }
}

/** OpenVPN's options string for a P2P TLS tunnel over UDP with an AEAD cipher. */
export function defaultOptionsString(role: Role, cipher: string): string {
  const keysize = cipher.toUpperCase().startsWith('AES-128') ? 128 : 256;
  return `V4,dev-type tun,link-mtu 1549,tun-mtu 1500,proto UDPv4,cipher ${cipher},auth [null-digest],keysize ${keysize},key-method 2,tls-${role}`;
}
