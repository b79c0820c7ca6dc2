/**
 * A batch of packets moving through the data path together, in the shape of wireguard-go's
 * tun.Device and conn.Bind: fixed buffers allocated once and reused, each packet at its own
 * offset so that headers can be prepended in place. A packet dropped on the way has its size
 * set to DROPPED; `compact` then closes the gaps, keeping order (reordering a batch would
 * reorder TCP segments inside the tunnel).
 */
import { MAX_OVERHEAD } from './cipher.js';

export const MAX_BATCH = 128;
/** Room in front of each packet: the largest data-channel overhead, rounded up. */
export const HEADROOM = 64;
/** Largest IP packet, and largest UDP payload: a TUN or UDP read never returns more. */
export const MAX_PACKET = 65535;
/** Room after the largest packet, for trailers such as padding. */
export const TAILROOM = 64;
/** Default per-buffer capacity: any packet fits with its headroom and tailroom. */
export const BUFFER_SIZE = HEADROOM + MAX_PACKET + TAILROOM;
export const DROPPED = -1;

export interface PacketBatch {
  readonly bufs: Buffer[];
  readonly offsets: Int32Array;
  readonly sizes: Int32Array;
  count: number;
}

export function newBatch(n = MAX_BATCH, capacity = BUFFER_SIZE, headroom = HEADROOM): PacketBatch {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH)
    throw new RangeError(`batch size must be 1 to ${MAX_BATCH} packets, got ${n}`);
  if (headroom < MAX_OVERHEAD) throw new RangeError(`headroom must be at least ${MAX_OVERHEAD} bytes, got ${headroom}`);
  if (capacity <= headroom)
    throw new RangeError(`capacity ${capacity} leaves no room after ${headroom} bytes of headroom`);
  const bufs = allocPacketBuffers(n, capacity);
  const offsets = new Int32Array(n).fill(headroom);
  return { bufs, offsets, sizes: new Int32Array(n), count: 0 };
}

/**
 * `n` buffers of `capacity` bytes cut from one slab of memory that nothing else uses (not
 * Node's shared pool), so native code may hold them across a syscall batch. One slab per batch
 * also lets the checksum code reuse a single DataView for all of its packets (checksum.ts).
 */
export function allocPacketBuffers(n: number, capacity: number): Buffer[] {
  const slab = Buffer.allocUnsafeSlow(n * capacity);
  const bufs: Buffer[] = [];
  for (let i = 0; i < n; i++) bufs.push(slab.subarray(i * capacity, (i + 1) * capacity));
  return bufs;
}

/** Resets every packet to start at `headroom`, ready for the next read. */
export function resetOffsets(batch: PacketBatch, headroom = HEADROOM): void {
  batch.offsets.fill(headroom);
  batch.count = 0;
}

/** Copies one packet into the next free slot (for tests and control-plane sends). */
export function pushPacket(batch: PacketBatch, data: Uint8Array, headroom = HEADROOM): void {
  const i = batch.count;
  const buf = batch.bufs[i];
  if (buf === undefined) throw new RangeError(`batch is full (${batch.bufs.length} packets)`);
  buf.set(data, headroom);
  batch.offsets[i] = headroom;
  batch.sizes[i] = data.length;
  batch.count = i + 1;
}

/** The bytes of packet i (a view, no copy). */
export function packetView(batch: PacketBatch, i: number): Buffer {
  const offset = batch.offsets[i]!;
  return batch.bufs[i]!.subarray(offset, offset + batch.sizes[i]!);
}

/**
 * Removes packets whose size is DROPPED, keeping order. Buffers are swapped, not copied, so
 * the pool keeps all of them. `sidecar` moves a parallel per-packet record (e.g. endpoints)
 * along with its packet.
 */
export function compact(batch: PacketBatch, sidecar?: { buf: Buffer; slotSize: number }): number {
  const { bufs, offsets, sizes } = batch;
  let kept = 0;
  for (let i = 0; i < batch.count; i++) {
    if (sizes[i]! === DROPPED) continue;
    if (kept !== i) {
      const spare = bufs[kept]!;
      bufs[kept] = bufs[i]!;
      bufs[i] = spare;
      offsets[kept] = offsets[i]!;
      sizes[kept] = sizes[i]!;
      if (sidecar) sidecar.buf.copyWithin(kept * sidecar.slotSize, i * sidecar.slotSize, (i + 1) * sidecar.slotSize);
    }
    kept++;
  }
  batch.count = kept;
  return kept;
}

/**
 * Where the run of packets that starts at `start` ends: the first index after it with another
 * owner (e.g. the peer each packet goes to). A run is sealed, opened and sent as one. Callers
 * loop over runs themselves rather than pass a callback, which would be a closure allocated on
 * every batch, an idle tunnel's every packet.
 */
export function runEnd<T>(owners: readonly (T | null)[], start: number, count: number): number {
  const owner = owners[start];
  let end = start + 1;
  while (end < count && owners[end] === owner) end++;
  return end;
}

/** compact() that keeps a per-packet owner array aligned with the packets. */
export function compactWithOwners<T>(
  batch: PacketBatch,
  owners: (T | null)[],
  sidecar?: { buf: Buffer; slotSize: number },
): number {
  let kept = 0;
  for (let i = 0; i < batch.count; i++) if (batch.sizes[i] !== DROPPED) owners[kept++] = owners[i]!;
  return compact(batch, sidecar);
}
