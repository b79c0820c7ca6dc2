/**
 * The unit of I/O for every edge (TUN, UDP): a fixed set of reusable buffers
 * plus per-packet offset/size arrays, in the style of wireguard-go's
 * tun.Device/conn.Bind. Buffers are allocated once so the hot path never
 * allocates, and offsets/sizes are Int32Arrays so native code can read and
 * write them directly without per-packet napi calls.
 */

/** Most packets moved per syscall batch (mirrors MAX_BATCH in native/ovpn_io.c). */
export const MAX_BATCH = 128;

/**
 * Bytes kept free in front of each packet so the 24-byte OpenVPN DATA_V2
 * header (opcode/peer-id, packet id, AEAD tag) can be prepended in place
 * instead of copying the payload into a new buffer.
 */
export const HEADROOM = 64;

/** Bytes kept free after the largest packet, for trailers such as padding or a tag. */
export const TAILROOM = 64;

/** Largest IP packet a TUN can hand us, and the largest UDP payload. */
export const MAX_PACKET = 65535;

/** Default per-buffer capacity: any packet still fits after adding headroom/tailroom. */
export const BUFFER_SIZE = HEADROOM + MAX_PACKET + TAILROOM;

export interface PacketBatch {
  /** Each of fixed capacity, allocated once and reused across calls. */
  readonly bufs: Buffer[];
  /** Per packet: where its data starts in bufs[i]. */
  readonly offsets: Int32Array;
  /** Per packet: its length. Writes may set a negative errno for a dropped packet. */
  readonly sizes: Int32Array;
  /** Packets currently in the batch. */
  count: number;
}

export function newBatch(capacity: number = BUFFER_SIZE, n: number = MAX_BATCH, headroom: number = HEADROOM): PacketBatch {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) throw new RangeError(`batch size must be 1..${MAX_BATCH}, got ${n}`);
  if (!Number.isInteger(headroom) || headroom < 0 || headroom >= capacity)
    throw new RangeError(`headroom ${headroom} must be in [0, capacity ${capacity})`);
  const bufs: Buffer[] = [];
  // allocUnsafeSlow: out of the shared pool, so each buffer's memory is its
  // own and stays put for the batch's lifetime; contents are always written
  // before being read.
  for (let i = 0; i < n; i++) bufs.push(Buffer.allocUnsafeSlow(capacity));
  const offsets = new Int32Array(n).fill(headroom);
  return { bufs, offsets, sizes: new Int32Array(n), count: 0 };
}

/** Restore every offset to `headroom` after a consumer moved them (e.g. after stripping a header). */
export function resetOffsets(batch: PacketBatch, headroom: number = HEADROOM): void {
  batch.offsets.fill(headroom);
  batch.count = 0;
}

/** The bytes of packet i (a view, no copy). */
export function packet(batch: PacketBatch, i: number): Buffer {
  const off = batch.offsets[i]!;
  return batch.bufs[i]!.subarray(off, off + batch.sizes[i]!);
}
