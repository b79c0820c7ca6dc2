/** Shared key fixtures: for core tests, and for installing keys into an interface. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type CipherAlg, cipherInfo, HEADROOM, type KeyConfig, type KeyContext } from '../../src/core/index.js';
import type { KeySlotName, OvpnInterface } from '../../src/device/ovpn-interface.js';

export const AEADS: CipherAlg[] = ['AES-128-GCM', 'AES-192-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305'];

/** Two matching random configs: what side A encrypts, side B decrypts. */
export function keyPair(cipher: CipherAlg, keyId = 0): [KeyConfig, KeyConfig] {
  const info = cipherInfo(cipher);
  const tail = randomBytes(info.nonceTailSize);
  const a = { key: randomBytes(info.keySize), nonceTail: tail };
  const b = { key: randomBytes(info.keySize), nonceTail: tail };
  return [
    { keyId, cipher, encrypt: a, decrypt: b },
    { keyId, cipher, encrypt: b, decrypt: a },
  ];
}

/** Seals one payload and returns a copy-free view of the wire packet. */
export function sealOne(context: KeyContext, payload: Uint8Array, peerId = 7): Buffer {
  const buf = Buffer.alloc(HEADROOM + payload.length);
  buf.set(payload, HEADROOM);
  const size = context.seal(buf, HEADROOM, payload.length, peerId);
  assert.ok(size > 0, `seal failed with ${size}`);
  return buf.subarray(HEADROOM - context.overhead, HEADROOM - context.overhead + size);
}

/** Opens a copy of `wire`; returns the plaintext or the negative KeyError. */
export function openOne(context: KeyContext, wire: Uint8Array): Buffer | number {
  const buf = Buffer.from(wire);
  const length = context.open(buf, 0, buf.length);
  return length < 0 ? length : buf.subarray(context.overhead, context.overhead + length);
}

/** Installs one side of a keyPair() into an interface's peer, as the control plane would. */
export function installKey(
  iface: OvpnInterface,
  peerId: number,
  config: KeyConfig,
  slot: KeySlotName = 'primary',
): void {
  iface.newKey({
    peerId,
    slot,
    keyId: config.keyId,
    cipherAlg: config.cipher,
    encryptDir: { cipherKey: config.encrypt.key, nonceTail: config.encrypt.nonceTail },
    decryptDir: { cipherKey: config.decrypt.key, nonceTail: config.decrypt.nonceTail },
  });
}
