/**
 * Sealing and opening batches: the form the data path calls. Packets are processed in place, a
 * run of them per AEAD backend call (aead.ts); failures are counted and marked DROPPED. The
 * range forms leave the DROPPED marks for the caller to compact once per batch (a batch may hold
 * runs for several peers); the whole-batch forms compact right away, so what comes out is the
 * good packets in their original order.
 */
import { AEAD_RUN_MAX, type AeadRun, Desc, newAeadRun } from './aead.js';
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
  const exhausted = key.sealRun(bufs, offsets, sizes, start, end, peerId);
  drops.keyExhausted += exhausted;
  return exhausted;
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

/** Where openRange describes each run of packets for one key: reused, nothing here re-enters. */
const OPEN_RUN = newAeadRun();

/**
 * Opens packets [start, end) in place with `slots`; each good one then holds its plaintext
 * (offset and size updated). Consecutive packets for the same key go to the backend in one call.
 * Returns how many were marked DROPPED.
 */
export function openRange(
  batch: PacketBatch,
  start: number,
  end: number,
  slots: KeySlots,
  drops: DropCounters,
): number {
  const { bufs, offsets, sizes } = batch;
  const run = OPEN_RUN;
  run.count = 0;
  let runKey: KeyContext | null = null;
  let dropped = 0;
  for (let i = start; i < end; i++) {
    const buf = bufs[i]!;
    const offset = offsets[i]!;
    const size = sizes[i]!;
    const key = keyForPacket(buf, offset, size, slots, drops);
    if (key === null) {
      sizes[i] = DROPPED;
      dropped++;
      continue;
    }
    if (key !== runKey || run.count === AEAD_RUN_MAX) {
      if (runKey !== null) dropped += finishOpen(batch, runKey, run, drops);
      runKey = key;
    }
    const error = key.queueOpen(run, i, buf, offset, size);
    if (error < 0) {
      countKeyError(error, drops);
      sizes[i] = DROPPED;
      dropped++;
    }
  }
  if (runKey !== null) dropped += finishOpen(batch, runKey, run, drops);
  return dropped;
}

/** Opens what `run` holds for `key` and applies the results to the batch. Returns drops. */
function finishOpen(batch: PacketBatch, key: KeyContext, run: AeadRun, drops: DropCounters): number {
  if (run.count === 0) return 0;
  key.openQueued(batch.bufs, run);
  const { offsets, sizes } = batch;
  const { desc, results, count } = run;
  const overhead = key.overhead;
  let dropped = 0;
  for (let j = 0; j < count; j++) {
    const i = desc[j * Desc.Stride + Desc.Index]!;
    const length = results[j]!;
    if (length < 0) {
      countKeyError(length, drops);
      sizes[i] = DROPPED;
      dropped++;
    } else {
      offsets[i]! += overhead;
      sizes[i] = length;
    }
  }
  run.count = 0;
  return dropped;
}

/** Opens the whole batch with one peer's slots and compacts away failures (moving `sidecar` along). */
export function openBatch(batch: PacketBatch, slots: KeySlots, drops: DropCounters, sidecar?: Sidecar): number {
  return openRange(batch, 0, batch.count, slots, drops) === 0 ? batch.count : compact(batch, sidecar);
}
