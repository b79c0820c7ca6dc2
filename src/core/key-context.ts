/**
 * A negotiated key as a peer uses it: its key-id, the encrypt and decrypt keys, the transmit
 * packet-id counter and the receive replay window (upstream ovpn calls this a crypto key slot).
 */
import {
  AEAD_IV_SIZE,
  AEAD_RUN_MAX,
  type AeadBackend,
  type AeadKeyPair,
  type AeadName,
  type AeadRun,
  Desc,
  newAeadRun,
  nodeAead,
} from './aead.js';
import { DROPPED } from './batch.js';
import {
  AAD_SIZE,
  type CipherAlg,
  type CipherInfo,
  checkKeyMaterial,
  type DirectionalKey,
  OpenError,
  TAG_SIZE,
} from './cipher.js';
import { PacketIdSender } from './packet-id.js';
import { ReplayVerdict, ReplayWindow } from './replay.js';
import { DATA_V2_HEADER_SIZE, MAX_KEY_ID, writeDataV2Header } from './wire.js';

export interface KeyMaterial {
  /** Key bytes; length fixed by the cipher (32 for AES-256-GCM and CHACHA20-POLY1305). */
  key: Uint8Array;
  /** 8 bytes for the AEAD ciphers, empty for NONE. */
  nonceTail: Uint8Array;
}

export interface KeyConfig {
  keyId: number;
  cipher: CipherAlg;
  encrypt: KeyMaterial;
  decrypt: KeyMaterial;
}

/** Why `seal` or `open` gave up on a packet; the caller counts these. */
export const enum KeyError {
  // biome-ignore lint/style/useLiteralEnumMembers: open() passes OpenError values through as they are
  Short = OpenError.Short,
  // biome-ignore lint/style/useLiteralEnumMembers: as above
  Auth = OpenError.Auth,
  Replay = -3,
  /** The transmit packet-id space is used up: sealing again would reuse a nonce. */
  Exhausted = -4,
}

/** Scratch of the single-packet forms and of sealRun; one is enough, nothing here re-enters. */
const SEAL_RUN = newAeadRun();
const ONE_RUN = newAeadRun(1);
const ONE_BUF: Buffer[] = [Buffer.alloc(0)];
const ONE_OFFSET = new Int32Array(1);
const ONE_SIZE = new Int32Array(1);
const NO_BUFFER = ONE_BUF[0]!;

export class KeyContext {
  readonly keyId: number;
  readonly info: CipherInfo;
  /** Both directions in the backend; null for NONE. */
  private pair: AeadKeyPair | null;
  /**
   * The nonce tails as two 32-bit halves each: numbers in the object, not a typed array per
   * direction (a few hundred bytes per key at 10,000 peers), and two stores per IV.
   */
  private readonly encryptTailHigh: number;
  private readonly encryptTailLow: number;
  private readonly decryptTailHigh: number;
  private readonly decryptTailLow: number;
  private readonly replay = new ReplayWindow();
  private swapSignalled = false;
  private destroyed = false;
  /** Called once, when this key's packet-ids pass the wrap warning threshold. */
  onSwapNeeded: ((keyId: number) => void) | null = null;

  /**
   * `sender` is injectable so tests can start near the end of the packet-id space; `backend` is
   * the interface's choice (the device passes it; node:crypto when nobody does).
   */
  constructor(
    config: KeyConfig,
    private readonly sender = new PacketIdSender(),
    backend: AeadBackend = nodeAead,
  ) {
    if (!Number.isInteger(config.keyId) || config.keyId < 0 || config.keyId > MAX_KEY_ID) {
      throw new RangeError(`key-id must be an integer from 0 to ${MAX_KEY_ID}, got ${String(config.keyId)}`);
    }
    this.keyId = config.keyId;
    this.info = checkKeyMaterial(config.cipher, config.encrypt.key, config.encrypt.nonceTail);
    checkKeyMaterial(config.cipher, config.decrypt.key, config.decrypt.nonceTail);
    [this.encryptTailHigh, this.encryptTailLow] = tailHalves(config.encrypt.nonceTail);
    [this.decryptTailHigh, this.decryptTailLow] = tailHalves(config.decrypt.nonceTail);
    const name = this.info.nodeName as AeadName | null;
    this.pair = name === null ? null : backend.newKeyPair(name, config.encrypt.key, config.decrypt.key);
  }

  get overhead(): number {
    return this.info.overhead;
  }

  /** Highest packet-id received and verified with this key. */
  get highestPacketIdReceived(): number {
    return this.replay.highest;
  }

  toJSON(): object {
    return { keyId: this.keyId, cipher: this.info.alg };
  }

  /**
   * Frees the backend's key now (native: its contexts, wiping the key schedule). Called when the
   * key leaves its slot; any later seal or open throws instead of touching freed state.
   */
  destroy(): void {
    this.destroyed = true;
    this.pair?.destroy();
    this.pair = null;
  }

  /**
   * Seals the plaintext at `offset` in place for `peerId`; the packet then starts at
   * offset - overhead and is size + overhead long. Returns that new size or KeyError.Exhausted.
   */
  seal(buf: Buffer, offset: number, size: number, peerId: number): number {
    ONE_BUF[0] = buf;
    ONE_OFFSET[0] = offset;
    ONE_SIZE[0] = size;
    const exhausted = this.sealRun(ONE_BUF, ONE_OFFSET, ONE_SIZE, 0, 1, peerId);
    ONE_BUF[0] = NO_BUFFER;
    return exhausted > 0 ? KeyError.Exhausted : ONE_SIZE[0]!;
  }

  /**
   * Seals packets [start, end) in place for `peerId` with one backend call per run: header and
   * packet-id go into each packet's headroom, offsets and sizes then describe the wire packet.
   * A packet that finds the packet-id space used up gets size DROPPED. Returns how many did.
   */
  sealRun(
    bufs: readonly Buffer[],
    offsets: Int32Array,
    sizes: Int32Array,
    start: number,
    end: number,
    peerId: number,
  ): number {
    if (this.destroyed) keyDestroyed(this.keyId);
    const run = SEAL_RUN;
    const overhead = this.info.overhead;
    let exhausted = 0;
    run.count = 0;
    for (let i = start; i < end; i++) {
      const packetId = this.sender.take();
      if (packetId < 0) {
        sizes[i] = DROPPED;
        exhausted++;
        continue;
      }
      const buf = bufs[i]!;
      const offset = offsets[i]!;
      const size = sizes[i]!;
      const head = offset - overhead;
      writeDataV2Header(buf, head, this.keyId, peerId);
      buf.writeUInt32BE(packetId, head + DATA_V2_HEADER_SIZE);
      if (this.pair !== null) {
        describe(run, i, head, size, packetId, this.encryptTailHigh, this.encryptTailLow);
        if (run.count === AEAD_RUN_MAX) this.flushSeal(bufs, run);
      }
      offsets[i] = head;
      sizes[i] = size + overhead;
    }
    if (run.count > 0) this.flushSeal(bufs, run);
    if (!this.swapSignalled && this.sender.nearWrap) this.signalSwap();
    return exhausted;
  }

  /**
   * Opens the wire packet at `offset` in place. Returns the plaintext length (plaintext at
   * offset + overhead) or a KeyError. The replay window only records packets whose tag verified.
   */
  open(buf: Buffer, offset: number, size: number): number {
    const run = ONE_RUN;
    run.count = 0;
    const error = this.queueOpen(run, 0, buf, offset, size);
    if (error < 0) return error;
    ONE_BUF[0] = buf;
    this.openQueued(ONE_BUF, run);
    ONE_BUF[0] = NO_BUFFER;
    return run.results[0]!;
  }

  /**
   * First half of opening a run: checks the wire packet bufs[index] at `offset` (length, replay
   * window) and adds it to `run`. Returns 0, or the KeyError that drops it without crypto.
   */
  queueOpen(run: AeadRun, index: number, buf: Buffer, offset: number, size: number): number {
    if (this.destroyed) keyDestroyed(this.keyId);
    const overhead = this.info.overhead;
    if (size < overhead) return KeyError.Short;
    const packetId = buf.readUInt32BE(offset + DATA_V2_HEADER_SIZE);
    if (this.replay.check(packetId) !== ReplayVerdict.Ok) return KeyError.Replay;
    describe(run, index, offset, size - overhead, packetId, this.decryptTailHigh, this.decryptTailLow);
    return 0;
  }

  /**
   * Second half: opens every packet queued in `run` with one backend call, then records each
   * verified packet-id in the replay window, in order. `run.results[j]` becomes the plaintext
   * length (at the packet's offset + overhead) or a KeyError. A packet that fails its tag and
   * whose id an earlier packet of the run has since taken counts as a replay, as it would have
   * had the packets been opened one by one.
   */
  openQueued(bufs: readonly Buffer[], run: AeadRun): void {
    const { desc, ivs, results, count } = run;
    if (this.pair !== null) this.pair.open(bufs, desc, ivs, count, results);
    else for (let j = 0; j < count; j++) results[j] = desc[j * Desc.Stride + Desc.DataLen]!;
    for (let j = 0; j < count; j++) {
      const packetId = ivs.readUInt32BE(j * AEAD_IV_SIZE);
      if (results[j]! < 0) {
        results[j] = this.replay.check(packetId) === ReplayVerdict.Ok ? KeyError.Auth : KeyError.Replay;
      } else if (this.replay.accept(packetId) !== ReplayVerdict.Ok) {
        results[j] = KeyError.Replay;
      }
    }
  }

  private flushSeal(bufs: readonly Buffer[], run: AeadRun): void {
    this.pair!.seal(bufs, run.desc, run.ivs, run.count);
    run.count = 0;
  }

  private signalSwap(): void {
    this.swapSignalled = true;
    this.onSwapNeeded?.(this.keyId);
  }
}

function keyDestroyed(keyId: number): never {
  throw new Error(`key ${keyId} was deleted: it can no longer seal or open`);
}

/**
 * Adds the packet whose header starts at `head` to `run`: AAD = header and packet-id, tag right
 * after, then `length` bytes of data; IV = packet-id ‖ nonce tail.
 */
function describe(
  run: AeadRun,
  index: number,
  head: number,
  length: number,
  packetId: number,
  tailHigh: number,
  tailLow: number,
): void {
  const j = run.count++;
  const d = j * Desc.Stride;
  const { desc, ivs } = run;
  desc[d + Desc.Index] = index;
  desc[d + Desc.AadOff] = head;
  desc[d + Desc.AadLen] = AAD_SIZE;
  desc[d + Desc.TagOff] = head + AAD_SIZE;
  desc[d + Desc.DataOff] = head + AAD_SIZE + TAG_SIZE;
  desc[d + Desc.DataLen] = length;
  const iv = j * AEAD_IV_SIZE;
  ivs.writeUInt32BE(packetId, iv);
  ivs.writeUInt32BE(tailHigh, iv + 4);
  ivs.writeUInt32BE(tailLow, iv + 8);
}

/** An 8-byte nonce tail as its big-endian 32-bit halves; NONE's empty tail as zeros. */
function tailHalves(tail: Uint8Array): [number, number] {
  if (tail.length === 0) return [0, 0];
  const view = new DataView(tail.buffer, tail.byteOffset, tail.length);
  return [view.getUint32(0), view.getUint32(4)];
}

/**
 * Writes header and packet-id into the headroom before `offset` and seals the plaintext in
 * place with a DirectionalKey (node:crypto). Returns the sealed size. The data path seals through
 * KeyContext.sealRun instead; known-answer tests call this to reproduce a captured packet-id.
 */
export function sealPacket(
  key: DirectionalKey,
  keyId: number,
  peerId: number,
  packetId: number,
  buf: Buffer,
  offset: number,
  size: number,
): number {
  const start = offset - key.info.overhead;
  writeDataV2Header(buf, start, keyId, peerId);
  buf.writeUInt32BE(packetId, start + DATA_V2_HEADER_SIZE);
  key.seal(buf, offset, size, packetId);
  return size + key.info.overhead;
}
