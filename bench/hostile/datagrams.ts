/**
 * The hostile datagrams: a pool built once and sent round and round, so the sender spends its
 * time in sendmmsg, not in generating. Each kind is something an attacker on the path (or
 * anywhere on the Internet) can send to an ovpn-dco UDP port.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { composeOpByte, type KeyContext } from '../../src/core/index.js';
import { Opcode } from '../../src/core/wire.js';
import { sealOne } from '../../test/helpers/keys.js';
import { ipv4Packet } from '../../test/helpers/packets.js';

export const KINDS = [
  'random',
  'empty',
  'truncated-valid',
  'bit-flipped-valid',
  'replay',
  'wrong-key-id',
  'unknown-peer-id',
  'undefined-peer-id',
  'data-v1',
  'control-opcode',
] as const;
export type Kind = (typeof KINDS)[number];

export interface Pool {
  /** Valid packets for the peer: sent once before the flood, so that the flood's copies are replays. */
  primes: Buffer[];
  datagrams: Buffer[];
  kinds: Kind[];
}

function dataV2(keyId: number, peerId: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(((composeOpByte(Opcode.DATA_V2, keyId) << 24) | peerId) >>> 0, 0);
  return Buffer.concat([head, body]);
}

/**
 * `size` datagrams, kinds in turn. `context` seals for `peerId` with the key the daemon holds
 * (its key-id must not be the one the real client uses, so the replay windows stay apart);
 * the inner packets go from `src` to `dst`.
 */
export function buildPool(context: KeyContext, peerId: number, src: string, dst: string, size = 4096): Pool {
  const primes: Buffer[] = [];
  for (let i = 0; i < 64; i++) primes.push(sealOne(context, ipv4Packet(src, dst, `hostile prime ${i}`), peerId));
  const keyId = primes[0]![0]! & 7;
  const pick = () => primes[randomInt(primes.length)]!;
  const make: Record<Kind, () => Buffer> = {
    random: () => randomBytes(1 + randomInt(1500)),
    empty: () => Buffer.alloc(0),
    'truncated-valid': () => {
      const p = pick();
      return Buffer.from(p.subarray(0, randomInt(1, p.length)));
    },
    'bit-flipped-valid': () => {
      const p = Buffer.from(pick());
      // Past the opcode byte and peer-id: those select the counter, the flip must reach the AEAD.
      const bit = 32 + randomInt((p.length - 4) * 8);
      p[bit >> 3]! ^= 1 << (bit & 7);
      return p;
    },
    replay: () => Buffer.from(pick()),
    'wrong-key-id': () => {
      const p = Buffer.from(pick());
      p[0] = composeOpByte(Opcode.DATA_V2, (keyId + 1 + randomInt(6)) & 7);
      return p;
    },
    'unknown-peer-id': () => dataV2(keyId, 0x100000 + randomInt(0xeffff), randomBytes(randomInt(200))),
    'undefined-peer-id': () => dataV2(keyId, 0xffffff, randomBytes(randomInt(200))),
    'data-v1': () => Buffer.concat([Buffer.from([composeOpByte(Opcode.DATA_V1, keyId)]), randomBytes(randomInt(200))]),
    'control-opcode': () => {
      const controls = [1, 2, 3, 4, 5, 7, 8, 10, 11];
      const op = controls[randomInt(controls.length)]!;
      return Buffer.concat([Buffer.from([composeOpByte(op, randomInt(8))]), randomBytes(randomInt(300))]);
    },
  };
  const datagrams: Buffer[] = [];
  const kinds: Kind[] = [];
  for (let i = 0; i < size; i++) {
    const kind = KINDS[i % KINDS.length]!;
    kinds.push(kind);
    datagrams.push(make[kind]());
  }
  return { primes, datagrams, kinds };
}
