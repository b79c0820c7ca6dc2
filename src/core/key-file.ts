/**
 * The pre-shared key file of the seed's ovpn-cli: base64 of two 32-byte keys followed by an
 * 8-byte nonce tail. Longer files are accepted and their tail ignored, as ovpn-cli does (the
 * upstream selftests ship a 256-byte data64.key). Both ends load the same file with opposite key directions, so what one
 * encrypts with the other decrypts with. Both directions share the nonce tail; that is safe
 * only because each direction uses a different key.
 */
import { type CipherAlg, cipherInfo, NONCE_TAIL_SIZE } from './cipher.js';
import type { KeyMaterial } from './key-context.js';

export const KEY_FILE_KEY_SIZE = 32;
export const KEY_FILE_SIZE = 2 * KEY_FILE_KEY_SIZE + NONCE_TAIL_SIZE;

export type KeyDirection = 0 | 1;

export interface DirectionalKeys {
  encrypt: KeyMaterial;
  decrypt: KeyMaterial;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes the file's text; throws an error that says what is wrong and what is expected. */
export function decodeKeyFile(text: string, source = 'key file'): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) throw new Error(`${source} is empty: expected base64 of ${KEY_FILE_SIZE} bytes`);
  if (!BASE64.test(compact) || compact.length % 4 !== 0) {
    throw new Error(
      `${source} is not valid base64: expected base64 of ${KEY_FILE_SIZE} bytes (two 32-byte keys and an 8-byte nonce tail)`,
    );
  }
  const raw = Buffer.from(compact, 'base64');
  if (raw.length < KEY_FILE_SIZE) {
    throw new Error(
      `${source} holds ${raw.length} bytes: expected at least ${KEY_FILE_SIZE} (two 32-byte keys and an 8-byte nonce tail)`,
    );
  }
  return raw;
}

/**
 * Splits decoded key-file bytes by direction. Ciphers with shorter keys (AES-128/192-GCM) take
 * the leading bytes of each 32-byte key, as OpenVPN does with its key blocks; NONE takes none.
 */
export function keysFromFile(raw: Uint8Array, cipher: CipherAlg, direction: KeyDirection): DirectionalKeys {
  if (direction !== 0 && direction !== 1) {
    throw new RangeError(`key direction must be 0 or 1, got ${String(direction)}`);
  }
  const info = cipherInfo(cipher);
  const first = raw.subarray(0, info.keySize);
  const second = raw.subarray(KEY_FILE_KEY_SIZE, KEY_FILE_KEY_SIZE + info.keySize);
  const nonceTail = raw.subarray(2 * KEY_FILE_KEY_SIZE, 2 * KEY_FILE_KEY_SIZE + info.nonceTailSize);
  const [enc, dec] = direction === 0 ? [first, second] : [second, first];
  return { encrypt: { key: enc, nonceTail }, decrypt: { key: dec, nonceTail } };
}

export function parseKeyFile(
  text: string,
  cipher: CipherAlg,
  direction: KeyDirection,
  source?: string,
): DirectionalKeys {
  return keysFromFile(decodeKeyFile(text, source), cipher, direction);
}
