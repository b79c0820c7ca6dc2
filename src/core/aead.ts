/**
 * The AEAD primitive the data path seals and opens runs of packets with, and its reference
 * implementation on node:crypto. The primitive is protocol-blind: it gets, per packet, a buffer
 * index, the AAD, data and tag ranges in that buffer, and a 12-byte IV; OpenVPN's layout, nonce
 * construction, packet-ids and replay window stay in key-context.ts.
 *
 * A backend is chosen per interface: `node` (this file) or `native` (edge/aead.ts, the shim's
 * EVP contexts kept per key). core/ only sees this interface, so it stays free of the OS.
 */
import { type CipherGCMTypes, createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';

export type CryptoBackendName = 'native' | 'node';
export const CRYPTO_BACKENDS: readonly CryptoBackendName[] = ['native', 'node'];

/** AEADs the backends implement, by their OpenSSL / node:crypto names. */
export type AeadName = 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

/** Packets per call: one batch (batch.ts MAX_BATCH; native/aead.c RUN_MAX). */
export const AEAD_RUN_MAX = 128;
export const AEAD_IV_SIZE = 12;
export const AEAD_TAG_SIZE = 16;
/** `results[j]` of a packet whose tag did not verify; its buffer is left untouched. */
export const AEAD_AUTH_FAILED = -1;

/** Int32 fields per packet in a run's `desc`, offsets into `bufs[index]`. */
export const enum Desc {
  Index = 0,
  AadOff = 1,
  AadLen = 2,
  DataOff = 3,
  DataLen = 4,
  TagOff = 5,
  Stride = 6,
}

/**
 * One direction pair of a key, as a backend holds it. `seal` encrypts each data range in place
 * and writes the tag at its offset; `open` verifies each tag and only then writes the plaintext
 * over the ciphertext, setting `results[j]` to its length or AEAD_AUTH_FAILED. Packet j uses
 * `ivs[12j, 12j+12)`. After `destroy` both throw.
 */
export interface AeadKeyPair {
  seal(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number): void;
  open(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number, results: Int32Array): void;
  /** Frees and wipes the key now instead of at garbage collection. Idempotent. */
  destroy(): void;
}

export interface AeadBackend {
  readonly name: CryptoBackendName;
  /** A key pair for `name`: `encrypt` seals, `decrypt` opens. The byte arrays are not kept. */
  newKeyPair(name: AeadName, encrypt: Uint8Array, decrypt: Uint8Array): AeadKeyPair;
}

/** The scratch a run is described in: one per caller, reused for every run. */
export interface AeadRun {
  readonly desc: Int32Array;
  readonly ivs: Buffer;
  readonly results: Int32Array;
  count: number;
}

export function newAeadRun(capacity = AEAD_RUN_MAX): AeadRun {
  return {
    desc: new Int32Array(capacity * Desc.Stride),
    ivs: Buffer.alloc(capacity * AEAD_IV_SIZE),
    results: new Int32Array(capacity),
    count: 0,
  };
}

/** Allocated once: the options object is read per call, never kept by node:crypto. */
const AEAD_OPTIONS = { authTagLength: AEAD_TAG_SIZE };

/**
 * Scratch copies of the IV, AAD and tag: node:crypto wants separate buffers, and copying a few
 * bytes into buffers made once is cheaper than a Buffer view (an object, GC work) per packet.
 */
const nonce = Buffer.alloc(AEAD_IV_SIZE);
const tag = Buffer.alloc(AEAD_TAG_SIZE);
const SHORT_AAD = 16;
const aad = Buffer.alloc(SHORT_AAD);

function copy(into: Buffer, from: Buffer, offset: number, length: number): void {
  for (let i = 0; i < length; i++) into[i] = from[offset + i]!;
}

/** The AAD of a packet: the scratch copy when short (OpenVPN's is 8 bytes), else a view. */
function aadOf(buf: Buffer, offset: number, length: number): Buffer {
  if (length > SHORT_AAD) return buf.subarray(offset, offset + length);
  copy(aad, buf, offset, length);
  return length === SHORT_AAD ? aad : aad.subarray(0, length);
}

function destroyed(): never {
  throw new Error('AEAD key used after destroy');
}

/** node:crypto: a cipher object per packet; the reference the native backend is tested against. */
class NodeKeyPair implements AeadKeyPair {
  private encryptKey: KeyObject | null;
  private decryptKey: KeyObject | null;

  constructor(
    // Both AEAD families take the same calls; the overloads differ only in option types.
    private readonly name: CipherGCMTypes,
    encrypt: Uint8Array,
    decrypt: Uint8Array,
  ) {
    this.encryptKey = createSecretKey(encrypt);
    this.decryptKey = createSecretKey(decrypt);
  }

  seal(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number): void {
    const key = this.encryptKey ?? destroyed();
    for (let j = 0; j < count; j++) {
      const d = j * Desc.Stride;
      const buf = bufs[desc[d + Desc.Index]!]!;
      const dataOff = desc[d + Desc.DataOff]!;
      copy(nonce, ivs, j * AEAD_IV_SIZE, AEAD_IV_SIZE);
      const cipher = createCipheriv(this.name, key, nonce, AEAD_OPTIONS);
      const aadLen = desc[d + Desc.AadLen]!;
      if (aadLen > 0) cipher.setAAD(aadOf(buf, desc[d + Desc.AadOff]!, aadLen));
      // update() always returns a fresh buffer (node:crypto has no output-buffer form): one view
      // of the plaintext and one copy back are the least this can cost.
      const ciphertext = cipher.update(buf.subarray(dataOff, dataOff + desc[d + Desc.DataLen]!));
      cipher.final();
      buf.set(ciphertext, dataOff);
      buf.set(cipher.getAuthTag(), desc[d + Desc.TagOff]!);
    }
  }

  open(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number, results: Int32Array): void {
    const key = this.decryptKey ?? destroyed();
    for (let j = 0; j < count; j++) {
      const d = j * Desc.Stride;
      const buf = bufs[desc[d + Desc.Index]!]!;
      const dataOff = desc[d + Desc.DataOff]!;
      const length = desc[d + Desc.DataLen]!;
      copy(nonce, ivs, j * AEAD_IV_SIZE, AEAD_IV_SIZE);
      const decipher = createDecipheriv(this.name, key, nonce, AEAD_OPTIONS);
      const aadLen = desc[d + Desc.AadLen]!;
      if (aadLen > 0) decipher.setAAD(aadOf(buf, desc[d + Desc.AadOff]!, aadLen));
      copy(tag, buf, desc[d + Desc.TagOff]!, AEAD_TAG_SIZE);
      decipher.setAuthTag(tag);
      const plaintext = decipher.update(buf.subarray(dataOff, dataOff + length));
      try {
        decipher.final();
      } catch {
        results[j] = AEAD_AUTH_FAILED;
        continue;
      }
      buf.set(plaintext, dataOff);
      results[j] = length;
    }
  }

  destroy(): void {
    this.encryptKey = null;
    this.decryptKey = null;
  }
}

export const nodeAead: AeadBackend = {
  name: 'node',
  newKeyPair: (name, encrypt, decrypt) => new NodeKeyPair(name as CipherGCMTypes, encrypt, decrypt),
};
