/**
 * Sealing and opening whole batches: the form the data path calls. Each packet is processed
 * in place; failures are counted, marked DROPPED and compacted away, so what comes out is a
 * batch of good packets in their original order.
 */
import { compact, DROPPED, type PacketBatch } from './batch.js';
import type { DropCounters } from './drops.js';
import { KeyError, type KeyContext } from './key-context.js';
import type { KeySlots } from './key-slots.js';
import { keyIdOf, Opcode, opcodeOf } from './wire.js';

/** Seals every packet of the batch with `key` (normally the primary). Returns packets kept. */
export function sealBatch(batch: PacketBatch, key: KeyContext | null, peerId: number, drops: DropCounters): number {
  if (key === null) {
    drops.noKey += batch.count;
    batch.count = 0;
    return 0;
  }
  const { bufs, offsets, sizes } = batch;
  const overhead = key.overhead;
  let dropped = 0;
  for (let i = 0; i < batch.count; i++) {
    const size = key.seal(bufs[i]!, offsets[i]!, sizes[i]!, peerId);
    if (size < 0) {
      drops.keyExhausted++;
      sizes[i] = DROPPED;
      dropped++;
      continue;
    }
    offsets[i]! -= overhead;
    sizes[i] = size;
  }
  return dropped === 0 ? batch.count : compact(batch);
}

/** Counts a KeyError in the matching drop counter. */
export function countKeyError(error: number, drops: DropCounters): void {
  if (error === KeyError.Auth) drops.auth++;
  else if (error === KeyError.Replay) drops.replay++;
  else if (error === KeyError.Exhausted) drops.keyExhausted++;
  else drops.malformed++;
}

/**
 * The key that can open this DATA_V2 packet: the slot its key-id names. Counts and returns null
 * when the packet is not DATA_V2 or no slot has that key-id.
 */
export function keyForPacket(buf: Buffer, offset: number, size: number, slots: KeySlots, drops: DropCounters): KeyContext | null {
  if (size < 1 || opcodeOf(buf[offset]!) !== Opcode.DATA_V2) {
    drops.malformed++;
    return null;
  }
  const key = slots.forKeyId(keyIdOf(buf[offset]!));
  if (key === null) {
    drops.noKey++;
    return null;
  }
  return key;
}

/**
 * Opens every packet of the batch in place; each then holds its plaintext. `sidecar` is moved
 * along when packets are compacted away. Returns packets kept.
 */
export function openBatch(
  batch: PacketBatch,
  slots: KeySlots,
  drops: DropCounters,
  sidecar?: { buf: Buffer; slotSize: number },
): number {
  const { bufs, offsets, sizes } = batch;
  let dropped = 0;
  for (let i = 0; i < batch.count; i++) {
    const buf = bufs[i]!;
    const offset = offsets[i]!;
    const key = keyForPacket(buf, offset, sizes[i]!, slots, drops);
    const length = key === null ? KeyError.Short : key.open(buf, offset, sizes[i]!);
    if (length < 0) {
      if (key !== null) countKeyError(length, drops);
      sizes[i] = DROPPED;
      dropped++;
      continue;
    }
    offsets[i] = offset + key!.overhead;
    sizes[i] = length;
  }
  return dropped === 0 ? batch.count : compact(batch, sidecar);
}
