/**
 * Data-channel keys from a finished TLS session. Both methods produce OpenVPN's `key2`: two
 * 128-byte blocks (64 bytes of cipher key, then 64 of HMAC key), the first for the client's
 * direction, the second for the server's. An AEAD cipher takes its key from the front of the
 * cipher part and its implicit IV (our nonce tail) from the front of the HMAC part.
 *
 * - Exporter (OpenVPN 2.6 when both ends announce IV_PROTO_TLS_KEY_EXPORT): RFC 5705 keying
 *   material with label EXPORTER-OpenVPN-datakeys and no context.
 * - OpenVPN PRF (older peers): TLS 1.0's PRF (MD5 and SHA-1 halves), first a master secret
 *   from the client's pre-master and both random1, then the key block from the master, both
 *   random2 and both session ids.
 */
import { createHmac } from 'node:crypto';
import { type CipherAlg, cipherInfo } from '../core/cipher.js';
import type { KeyDirConfig } from '../device/api.js';
import type { KeySource } from './key-method.js';

export const KEY_BLOCK_SIZE = 128;
export const KEY2_SIZE = 2 * KEY_BLOCK_SIZE;
const CIPHER_PART = 64;
export const EXPORTER_LABEL = 'EXPORTER-OpenVPN-datakeys';
export const P2P_PEER_ID_LABEL = 'EXPORTER-OpenVPN-p2p-peerid';
const MASTER_LABEL = 'OpenVPN master secret';
const EXPANSION_LABEL = 'OpenVPN key expansion';

/** Anything that can export keying material: a node:tls TLSSocket once secure. */
export interface KeyingMaterialExporter {
  exportKeyingMaterial(length: number, label: string, context?: Buffer): Buffer;
}

export function key2FromExporter(tls: KeyingMaterialExporter): Buffer {
  return tls.exportKeyingMaterial(KEY2_SIZE, EXPORTER_LABEL);
}

/** The peer-id both ends of a P2P session use with DATA_V2 when the exporter is on. */
export function p2pPeerId(tls: KeyingMaterialExporter): number {
  const b = tls.exportKeyingMaterial(3, P2P_PEER_ID_LABEL);
  return (b[0]! << 16) | (b[1]! << 8) | b[2]!;
}

/** The peer-id of a P2P session that speaks DATA_V2 without the exporter: 'vpn' in ASCII. */
export const P2P_FIXED_PEER_ID = 0x76706e;

function pHash(algorithm: 'md5' | 'sha1', secret: Buffer, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let a = seed;
  let have = 0;
  while (have < length) {
    a = createHmac(algorithm, secret).update(a).digest();
    const block = createHmac(algorithm, secret).update(a).update(seed).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** TLS 1.0/1.1's PRF (RFC 2246 section 5); the label is already part of the seed. */
export function tls1Prf(secret: Buffer, seed: Buffer, length: number): Buffer {
  const half = Math.ceil(secret.length / 2);
  const md5 = pHash('md5', secret.subarray(0, half), seed, length);
  const sha1 = pHash('sha1', secret.subarray(secret.length - half), seed, length);
  for (let i = 0; i < length; i++) md5[i]! ^= sha1[i]!;
  return md5;
}

export interface PrfInputs {
  client: KeySource;
  server: KeySource;
  clientSessionId: Buffer;
  serverSessionId: Buffer;
}

export function key2FromPrf(inputs: PrfInputs): Buffer {
  const { client, server } = inputs;
  if (client.preMaster === undefined) throw new RangeError('the client key source needs its pre-master secret');
  const master = tls1Prf(
    client.preMaster,
    Buffer.concat([Buffer.from(MASTER_LABEL), client.random1, server.random1]),
    48,
  );
  return tls1Prf(
    master,
    Buffer.concat([
      Buffer.from(EXPANSION_LABEL),
      client.random2,
      server.random2,
      inputs.clientSessionId,
      inputs.serverSessionId,
    ]),
    KEY2_SIZE,
  );
}

export interface DirectionKeys {
  encryptDir: KeyDirConfig;
  decryptDir: KeyDirConfig;
}

/** Splits key2 for one end: the server encrypts with the second block, the client with the first. */
export function directionKeys(key2: Buffer, cipher: CipherAlg, server: boolean): DirectionKeys {
  if (key2.length !== KEY2_SIZE) throw new RangeError(`key2 is ${KEY2_SIZE} bytes`);
  const info = cipherInfo(cipher);
  const block = (i: number): KeyDirConfig => {
    const base = i * KEY_BLOCK_SIZE;
    return {
      cipherKey: Buffer.from(key2.subarray(base, base + info.keySize)),
      nonceTail: Buffer.from(key2.subarray(base + CIPHER_PART, base + CIPHER_PART + info.nonceTailSize)),
    };
  };
  const [out, inn] = server ? [1, 0] : [0, 1];
  return { encryptDir: block(out), decryptDir: block(inn) };
}
