/**
 * The data-channel ciphers and their packet layout, byte-compatible with OpenVPN 2.6:
 *
 *   AEAD:  op/key-id(1) peer-id(3) | packet-id(4) | tag(16) | ciphertext
 *   NONE:  op/key-id(1) peer-id(3) | packet-id(4) | plaintext
 *
 * nonce = packet-id(4) ‖ nonce-tail(8); AAD = the first 8 bytes (header and packet-id).
 * Packets are sealed in place: the plaintext sits at `offset` with at least `overhead` bytes of
 * headroom before it, and the header, packet-id and tag are written into that headroom.
 */
import {
  type CipherChaCha20Poly1305Types,
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
} from 'node:crypto';
import { DATA_V2_HEADER_SIZE } from './wire.js';

export const CIPHER_ALGS = ['AES-128-GCM', 'AES-192-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305', 'NONE'] as const;
export type CipherAlg = (typeof CIPHER_ALGS)[number];

export const PACKET_ID_SIZE = 4;
export const TAG_SIZE = 16;
export const NONCE_TAIL_SIZE = 8;
export const NONCE_SIZE = PACKET_ID_SIZE + NONCE_TAIL_SIZE;
/** Header plus packet-id: the AEAD's additional authenticated data. */
export const AAD_SIZE = DATA_V2_HEADER_SIZE + PACKET_ID_SIZE;

type AeadName = CipherGCMTypes | CipherChaCha20Poly1305Types;

export interface CipherInfo {
  readonly alg: CipherAlg;
  /** node:crypto algorithm name; null for NONE. */
  readonly nodeName: AeadName | null;
  readonly keySize: number;
  readonly nonceTailSize: number;
  readonly tagSize: number;
  /** Bytes added in front of the plaintext. */
  readonly overhead: number;
}

function aead(alg: CipherAlg, nodeName: AeadName, keySize: number): CipherInfo {
  return { alg, nodeName, keySize, nonceTailSize: NONCE_TAIL_SIZE, tagSize: TAG_SIZE, overhead: AAD_SIZE + TAG_SIZE };
}

const CIPHERS: Record<CipherAlg, CipherInfo> = {
  'AES-128-GCM': aead('AES-128-GCM', 'aes-128-gcm', 16),
  'AES-192-GCM': aead('AES-192-GCM', 'aes-192-gcm', 24),
  'AES-256-GCM': aead('AES-256-GCM', 'aes-256-gcm', 32),
  'CHACHA20-POLY1305': aead('CHACHA20-POLY1305', 'chacha20-poly1305', 32),
  NONE: { alg: 'NONE', nodeName: null, keySize: 0, nonceTailSize: 0, tagSize: 0, overhead: AAD_SIZE },
};

/** Largest overhead of any cipher: the headroom a batch must leave before each packet. */
export const MAX_OVERHEAD = AAD_SIZE + TAG_SIZE;

export function isCipherAlg(name: string): name is CipherAlg {
  return (CIPHER_ALGS as readonly string[]).includes(name);
}

export function cipherInfo(alg: CipherAlg): CipherInfo {
  const info = CIPHERS[alg];
  if (info === undefined) {
    throw new TypeError(`unknown cipher "${String(alg)}": use one of ${CIPHER_ALGS.join(', ')}`);
  }
  return info;
}

/** The cipher's info, once `key` and `nonceTail` are checked to have its sizes. */
export function checkKeyMaterial(alg: CipherAlg, key: Uint8Array, nonceTail: Uint8Array): CipherInfo {
  const info = cipherInfo(alg);
  if (key.length !== info.keySize) {
    throw new RangeError(`${alg} needs a ${info.keySize}-byte key, got ${key.length} bytes`);
  }
  if (nonceTail.length !== info.nonceTailSize) {
    throw new RangeError(`${alg} needs a ${info.nonceTailSize}-byte nonce tail, got ${nonceTail.length} bytes`);
  }
  return info;
}

/** Allocated once: the options object is read per call, never kept by node:crypto. */
const AEAD_OPTIONS = { authTagLength: TAG_SIZE };

/** Result codes of `open`; negative so they never collide with a plaintext length. */
export const enum OpenError {
  /** Shorter than header, packet-id and tag. */
  Short = -1,
  /** Tag did not verify: wrong key, corrupted or forged. */
  Auth = -2,
}

/**
 * One direction's key on node:crypto, packet by packet: the cipher, the key bytes (held as a
 * KeyObject, never printed) and the nonce tail. The data path seals and opens runs through
 * KeyContext and an AeadBackend (aead.ts); this stays as the plainest statement of the packet
 * format, for known-answer tests. Stateless apart from a scratch nonce.
 */
export class DirectionalKey {
  readonly info: CipherInfo;
  private readonly key: KeyObject | null;
  private readonly nonce: Buffer;
  /**
   * Scratch copies of the AAD and the tag. node:crypto wants them as separate buffers; copying
   * 8 and 16 bytes into buffers made once is cheaper than a Buffer view (a new object, and GC
   * work) per packet for each.
   */
  private readonly aad = Buffer.alloc(AAD_SIZE);
  private readonly tag = Buffer.alloc(TAG_SIZE);

  constructor(alg: CipherAlg, key: Uint8Array, nonceTail: Uint8Array) {
    this.info = checkKeyMaterial(alg, key, nonceTail);
    this.key = this.info.nodeName === null ? null : createSecretKey(key);
    this.nonce = Buffer.alloc(NONCE_SIZE);
    this.nonce.set(nonceTail, PACKET_ID_SIZE);
  }

  /** Keep key bytes out of logs and JSON dumps. */
  toJSON(): object {
    return { alg: this.info.alg };
  }

  /**
   * Seals the `size` plaintext bytes at `offset` (header already written at offset-overhead,
   * packet-id at offset-overhead+4). Writes tag and ciphertext in place.
   */
  seal(buf: Buffer, offset: number, size: number, packetId: number): void {
    if (this.key === null) return;
    const start = offset - this.info.overhead;
    this.nonce.writeUInt32BE(packetId, 0);
    // The overloads differ only in option types; both AEAD families share setAAD/getAuthTag.
    const cipher = createCipheriv(this.info.nodeName as CipherGCMTypes, this.key, this.nonce, AEAD_OPTIONS);
    const aad = this.aad;
    for (let i = 0; i < AAD_SIZE; i++) aad[i] = buf[start + i]!;
    cipher.setAAD(aad);
    // update() always returns a fresh buffer (node:crypto has no output-buffer form): one view
    // of the plaintext and one copy back are the least this can cost.
    const ciphertext = cipher.update(buf.subarray(offset, offset + size));
    cipher.final();
    buf.set(ciphertext, offset);
    buf.set(cipher.getAuthTag(), start + AAD_SIZE);
  }

  /**
   * Opens the whole wire packet at `offset` (header included) in place. Returns the plaintext
   * length, found at offset+overhead, or an OpenError.
   */
  open(buf: Buffer, offset: number, size: number, packetId: number): number {
    const overhead = this.info.overhead;
    const length = size - overhead;
    if (length < 0) return OpenError.Short;
    if (this.key === null) return length;
    const body = offset + overhead;
    this.nonce.writeUInt32BE(packetId, 0);
    const decipher = createDecipheriv(this.info.nodeName as CipherGCMTypes, this.key, this.nonce, AEAD_OPTIONS);
    const aad = this.aad;
    const tag = this.tag;
    for (let i = 0; i < AAD_SIZE; i++) aad[i] = buf[offset + i]!;
    for (let i = 0; i < TAG_SIZE; i++) tag[i] = buf[offset + AAD_SIZE + i]!;
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const plaintext = decipher.update(buf.subarray(body, body + length));
    try {
      decipher.final();
    } catch {
      return OpenError.Auth;
    }
    buf.set(plaintext, body);
    return length;
  }
}
