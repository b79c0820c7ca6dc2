/**
 * A negotiated key as a peer uses it: its key-id, the encrypt and decrypt keys, the transmit
 * packet-id counter and the receive replay window (upstream ovpn calls this a crypto key slot).
 */
import { type CipherAlg, type CipherInfo, DirectionalKey, OpenError } from './cipher.js';
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

export class KeyContext {
  readonly keyId: number;
  readonly info: CipherInfo;
  private readonly encryptKey: DirectionalKey;
  private readonly decryptKey: DirectionalKey;
  private readonly replay = new ReplayWindow();
  private swapSignalled = false;
  /** Called once, when this key's packet-ids pass the wrap warning threshold. */
  onSwapNeeded: ((keyId: number) => void) | null = null;

  /** `sender` is injectable so tests can start near the end of the packet-id space. */
  constructor(
    config: KeyConfig,
    private readonly sender = new PacketIdSender(),
  ) {
    if (!Number.isInteger(config.keyId) || config.keyId < 0 || config.keyId > MAX_KEY_ID) {
      throw new RangeError(`key-id must be an integer from 0 to ${MAX_KEY_ID}, got ${String(config.keyId)}`);
    }
    this.keyId = config.keyId;
    this.encryptKey = new DirectionalKey(config.cipher, config.encrypt.key, config.encrypt.nonceTail);
    this.decryptKey = new DirectionalKey(config.cipher, config.decrypt.key, config.decrypt.nonceTail);
    this.info = this.encryptKey.info;
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
   * Seals the plaintext at `offset` in place for `peerId`; the packet then starts at
   * offset - overhead and is size + overhead long. Returns that new size or KeyError.Exhausted.
   */
  seal(buf: Buffer, offset: number, size: number, peerId: number): number {
    const packetId = this.sender.take();
    if (packetId < 0) return KeyError.Exhausted;
    if (!this.swapSignalled && this.sender.nearWrap) this.signalSwap();
    return sealPacket(this.encryptKey, this.keyId, peerId, packetId, buf, offset, size);
  }

  /**
   * Opens the wire packet at `offset` in place. Returns the plaintext length (plaintext at
   * offset + overhead) or a KeyError. The replay window only records packets whose tag verified.
   */
  open(buf: Buffer, offset: number, size: number): number {
    if (size < this.info.overhead) return KeyError.Short;
    const packetId = buf.readUInt32BE(offset + DATA_V2_HEADER_SIZE);
    if (this.replay.check(packetId) !== ReplayVerdict.Ok) return KeyError.Replay;
    const length = this.decryptKey.open(buf, offset, size, packetId);
    if (length < 0) return length;
    if (this.replay.accept(packetId) !== ReplayVerdict.Ok) return KeyError.Replay;
    return length;
  }

  private signalSwap(): void {
    this.swapSignalled = true;
    this.onSwapNeeded?.(this.keyId);
  }
}

/**
 * Writes header and packet-id into the headroom before `offset` and seals the plaintext in
 * place. Returns the sealed size. KeyContext.seal is the only caller on the data path; known-
 * answer tests call it directly to reproduce a captured packet-id.
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
