/**
 * Sealing and opening batches: the form the data path calls. Each packet is processed in place;
 * failures are counted and marked DROPPED. The range forms leave the DROPPED marks for the
 * caller to compact once per batch (a batch may hold runs for several peers); the whole-batch
 * forms compact right away, so what comes out is the good packets in their original order.
 */
import { compact, DROPPED, type PacketBatch } from './batch.js';
import type { DropCounters } from './drops.js';
import { type KeyContext, KeyError } from './key-context.js';
import type { KeySlots } from './key-slots.js';
import { keyIdOf, Opcode, opcodeOf } from './wire.js';

type Sidecar = { buf: Buffer; slotSize: number };

/**
 * Seals packets [start, end) with `key` (normally a peer's primary) for `peerId`. Returns how
 * many were marked DROPPED.
 */
export function sealRange(
  batch: PacketBatch,
  start: number,
  end: number,
  key: KeyContext | null,
  peerId: number,
  drops: DropCounters,
): number {
  const { bufs, offsets, sizes } = batch;
  if (key === null) {
    for (let i = start; i < end; i++) sizes[i] = DROPPED;
    drops.noKey += end - start;
    return end - start;
  }
  const overhead = key.overhead;
  let dropped = 0;
  for (let i = start; i < end; i++) {
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
  return dropped;
}

/** Seals the whole batch with one key and compacts away failures. Returns packets kept. */
export function sealBatch(batch: PacketBatch, key: KeyContext | null, peerId: number, drops: DropCounters): number {
  return sealRange(batch, 0, batch.count, key, peerId, drops) === 0 ? batch.count : compact(batch);
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
export function keyForPacket(
  buf: Buffer,
  offset: number,
  size: number,
  slots: KeySlots,
  drops: DropCounters,
): KeyContext | null {
  if (size < 1 || opcodeOf(buf[offset]!) !== Opcode.DATA_V2) {
    drops.malformed++;
    return null;
  }
  const key = slots.forKeyId(keyIdOf(buf[offset]!));
  if (key === null) drops.noKey++;
  return key;
}

/**
 * Opens packets [start, end) in place with `slots`; each good one then holds its plaintext
 * (offset and size updated). Returns how many were marked DROPPED.
 */
export function openRange(
  batch: PacketBatch,
  start: number,
  end: number,
  slots: KeySlots,
  drops: DropCounters,
): number {
  const { bufs, offsets, sizes } = batch;
  let dropped = 0;
  for (let i = start; i < end; i++) {
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
  return dropped;
}

/** Opens the whole batch with one peer's slots and compacts away failures (moving `sidecar` along). */
export function openBatch(batch: PacketBatch, slots: KeySlots, drops: DropCounters, sidecar?: Sidecar): number {
  return openRange(batch, 0, batch.count, slots, drops) === 0 ? batch.count : compact(batch, sidecar);
}
