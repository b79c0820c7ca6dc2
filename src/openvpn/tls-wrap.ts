/**
 * Control-channel wrapping with a pre-shared static key: tls-auth (an HMAC over each packet,
 * with its own packet-id and time) and tls-crypt v1 (the same plus encryption: HMAC-SHA256 as
 * a synthetic IV for AES-256-CTR). Both keep the opcode byte and our session id in clear in
 * front, so a receiver can tell a packet's kind before unwrapping it.
 *
 *   plain:     op | sid | body
 *   tls-auth:  op | sid | hmac | packet-id | time | body        hmac over packet-id..time, op, sid, body
 *   tls-crypt: op | sid | packet-id | time | tag | ciphertext   tag over op..time and body; IV = tag[0..16]
 *
 * The static key (OpenVPN's key file) is two blocks of 64 bytes of cipher key and 64 of HMAC
 * key. A direction picks the block each side sends with: tls-crypt's server sends with the
 * first, its client with the second; tls-auth follows key-direction (0 like the tls-crypt
 * server, 1 the other way, none: both sides use the first block both ways).
 */
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { SESSION_ID_SIZE } from './packet.js';
import { STATIC_KEY_SIZE } from './static-key.js';

const HEADER_SIZE = 1 + SESSION_ID_SIZE;
const PID_SIZE = 8;
const TLS_CRYPT_TAG_SIZE = 32;
/** Packets within this many ids of the newest (same time) are still accepted, once each. */
const REPLAY_WINDOW = 64;

/** Which block of the static key each direction uses: 'normal' sends with 0, 'inverse' with 1. */
export type KeyDirection = 'normal' | 'inverse' | 'bidirectional';

interface Block {
  cipher: Buffer;
  hmac: Buffer;
}

function blocks(key: Buffer, direction: KeyDirection): { send: Block; receive: Block } {
  if (key.length !== STATIC_KEY_SIZE) throw new RangeError(`the static key is ${STATIC_KEY_SIZE} bytes`);
  const block = (i: number): Block => ({
    cipher: key.subarray(128 * i, 128 * i + 64),
    hmac: key.subarray(128 * i + 64, 128 * i + 128),
  });
  const [send, receive] = direction === 'normal' ? [0, 1] : direction === 'inverse' ? [1, 0] : [0, 0];
  return { send: block(send), receive: block(receive) };
}

export interface WrapOptions {
  /** Seconds of wall-clock time written into each packet (default: now). */
  time?: () => number;
}

/** Packet-ids and times of one receive direction: each (time, id) once, not far behind the newest. */
class ReplayGuard {
  private time = -1;
  private highest = 0;
  private readonly seen = new Set<number>();

  accept(time: number, id: number): boolean {
    if (time < this.time) return false;
    if (time > this.time) {
      this.time = time;
      this.highest = 0;
      this.seen.clear();
    }
    if (id === 0 || this.seen.has(id) || id + REPLAY_WINDOW <= this.highest) return false;
    this.seen.add(id);
    if (id > this.highest) this.highest = id;
    for (const old of this.seen) if (old + REPLAY_WINDOW <= this.highest) this.seen.delete(old);
    return true;
  }
}

export interface ControlWrap {
  /** Wraps a plain control packet (op | sid | body). */
  wrap(plain: Buffer): Buffer;
  /** The plain packet, or undefined when it does not authenticate or is a replay. */
  unwrap(wire: Buffer): Buffer | undefined;
  /** How many bytes wrapping adds. */
  readonly overhead: number;
}

abstract class WrapBase implements ControlWrap {
  abstract readonly overhead: number;
  private nextId = 1;
  private readonly replay = new ReplayGuard();
  protected readonly now: () => number;

  constructor(options: WrapOptions) {
    this.now = options.time ?? (() => Math.floor(Date.now() / 1000));
  }

  wrap(plain: Buffer): Buffer {
    if (this.nextId > 0xffffffff) throw new Error('control channel packet-ids exhausted');
    return this.wrapWith(plain, this.nextId++, this.now());
  }

  unwrap(wire: Buffer): Buffer | undefined {
    const opened = this.open(wire);
    if (opened === undefined || !this.replay.accept(opened.time, opened.id)) return undefined;
    return opened.plain;
  }

  /** Wraps with a given packet-id and time: deterministic, for known-answer tests. */
  abstract wrapWith(plain: Buffer, packetId: number, time: number): Buffer;
  /** Authenticates (and decrypts) without the replay check. */
  abstract open(wire: Buffer): { plain: Buffer; id: number; time: number } | undefined;
}

function pidBytes(id: number, time: number): Buffer {
  const out = Buffer.alloc(PID_SIZE);
  out.writeUInt32BE(id, 0);
  out.writeUInt32BE(time, 4);
  return out;
}

export class TlsCrypt extends WrapBase {
  readonly overhead = PID_SIZE + TLS_CRYPT_TAG_SIZE;
  private readonly keys: { send: Block; receive: Block };

  /** `server`: the tls-server's side (sends with the key's first block). */
  constructor(key: Buffer, server: boolean, options: WrapOptions = {}) {
    super(options);
    this.keys = blocks(key, server ? 'normal' : 'inverse');
  }

  wrapWith(plain: Buffer, packetId: number, time: number): Buffer {
    const { send } = this.keys;
    const head = Buffer.concat([plain.subarray(0, HEADER_SIZE), pidBytes(packetId, time)]);
    const body = plain.subarray(HEADER_SIZE);
    const tag = createHmac('sha256', send.hmac.subarray(0, 32)).update(head).update(body).digest();
    const ctr = createCipheriv('aes-256-ctr', send.cipher.subarray(0, 32), tag.subarray(0, 16));
    return Buffer.concat([head, tag, ctr.update(body), ctr.final()]);
  }

  open(wire: Buffer): { plain: Buffer; id: number; time: number } | undefined {
    const { receive } = this.keys;
    const tagAt = HEADER_SIZE + PID_SIZE;
    if (wire.length < tagAt + TLS_CRYPT_TAG_SIZE) return undefined;
    const tag = wire.subarray(tagAt, tagAt + TLS_CRYPT_TAG_SIZE);
    const ctr = createCipheriv('aes-256-ctr', receive.cipher.subarray(0, 32), tag.subarray(0, 16));
    const body = Buffer.concat([ctr.update(wire.subarray(tagAt + TLS_CRYPT_TAG_SIZE)), ctr.final()]);
    const check = createHmac('sha256', receive.hmac.subarray(0, 32))
      .update(wire.subarray(0, tagAt))
      .update(body)
      .digest();
    if (!timingSafeEqual(check, tag)) return undefined;
    return {
      plain: Buffer.concat([wire.subarray(0, HEADER_SIZE), body]),
      id: wire.readUInt32BE(HEADER_SIZE),
      time: wire.readUInt32BE(HEADER_SIZE + 4),
    };
  }
}

/** tls-auth's digests (OpenVPN's --auth); SHA1 is its default. */
export type TlsAuthDigest = 'SHA1' | 'SHA256' | 'SHA384' | 'SHA512';
const DIGEST_SIZE: Record<TlsAuthDigest, number> = { SHA1: 20, SHA256: 32, SHA384: 48, SHA512: 64 };

export class TlsAuth extends WrapBase {
  readonly overhead: number;
  private readonly keys: { send: Block; receive: Block };
  private readonly size: number;

  /** `keyDirection`: 0, 1 or undefined (both ways with the first block), as the key-direction option. */
  constructor(
    key: Buffer,
    keyDirection: 0 | 1 | undefined,
    private readonly digest: TlsAuthDigest = 'SHA1',
    options: WrapOptions = {},
  ) {
    super(options);
    this.keys = blocks(key, keyDirection === 0 ? 'normal' : keyDirection === 1 ? 'inverse' : 'bidirectional');
    this.size = DIGEST_SIZE[digest];
    this.overhead = this.size + PID_SIZE;
  }

  private mac(key: Buffer, pid: Buffer, plain: Buffer): Buffer {
    return createHmac(this.digest.toLowerCase(), key.subarray(0, this.size)).update(pid).update(plain).digest();
  }

  wrapWith(plain: Buffer, packetId: number, time: number): Buffer {
    const pid = pidBytes(packetId, time);
    const mac = this.mac(this.keys.send.hmac, pid, plain);
    return Buffer.concat([plain.subarray(0, HEADER_SIZE), mac, pid, plain.subarray(HEADER_SIZE)]);
  }

  open(wire: Buffer): { plain: Buffer; id: number; time: number } | undefined {
    const pidAt = HEADER_SIZE + this.size;
    if (wire.length < pidAt + PID_SIZE) return undefined;
    const pid = wire.subarray(pidAt, pidAt + PID_SIZE);
    const plain = Buffer.concat([wire.subarray(0, HEADER_SIZE), wire.subarray(pidAt + PID_SIZE)]);
    const check = this.mac(this.keys.receive.hmac, pid, plain);
    if (!timingSafeEqual(check, wire.subarray(HEADER_SIZE, pidAt))) return undefined;
    return { plain, id: pid.readUInt32BE(0), time: pid.readUInt32BE(4) };
  }
}
