/**
 * The Internet checksum (RFC 1071) over packet bytes: the ones' complement sum of big-endian
 * 16-bit words. Segmenting a TCP super-packet computes one per segment and coalescing verifies
 * one per segment, so this loop runs over nearly every byte the tunnel carries.
 *
 * Long ranges are summed as little-endian 32-bit words through a DataView, a quarter of the
 * loads of a byte loop. A ones' complement sum commutes with
 * byte swapping (RFC 1071 §2(B)): summing the words little-endian yields the byte-swapped
 * result, which is swapped back once at the end. The sum is kept in a double, exact up to 2^53,
 * so a 64 KiB packet needs no carry folding inside the loop.
 */

/** Below this length a byte loop is cheaper than finding a DataView. */
const WORD_LOOP_MIN = 64;

/** From this length a native sum (one call into the shim) beats the word loop. */
const RANGE_SUM_MIN = 256;

/** Sums buf[start, end) onto a folded `acc` exactly as sum16 does; see useRangeSum. */
export type RangeSum = (buf: Uint8Array, start: number, end: number, acc: number) => number;

/**
 * The shim's checksum for long ranges, when the edge installed one (edge/native.ts, unless
 * OVPN_NATIVE_CHECKSUM=0); core cannot load it itself. The loop below stays the reference.
 */
let rangeSum: RangeSum | null = null;

export function useRangeSum(sum: RangeSum | null): void {
  rangeSum = sum;
}

/** Folds a non-negative sum (below 2^31) to 16 bits, end-around carry included. */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * Adds the 16-bit big-endian words of buf[start, end) to `acc` (a folded sum) and returns the
 * folded ones' complement sum. An odd last byte counts as its high half.
 */
export function sum16(buf: Uint8Array, start: number, end: number, acc: number): number {
  if (end - start < WORD_LOOP_MIN) return fold(acc + byteSum(buf, start, end));
  if (rangeSum !== null && end - start >= RANGE_SUM_MIN) return rangeSum(buf, start, end, acc);
  return sum16Words(buf, start, end, acc);
}

/** sum16's own loop over 32-bit words: the reference for any RangeSum. */
export function sum16Words(buf: Uint8Array, start: number, end: number, acc: number): number {
  const view = viewOf(buf);
  let i = buf.byteOffset + start;
  const stop = buf.byteOffset + end;
  let t = 0;
  for (const stop16 = stop - 15; i < stop16; i += 16) {
    t +=
      view.getUint32(i, true) +
      view.getUint32(i + 4, true) +
      view.getUint32(i + 8, true) +
      view.getUint32(i + 12, true);
  }
  for (; i + 4 <= stop; i += 4) t += view.getUint32(i, true);
  const swapped = fold((t % 0x10000) + Math.floor(t / 0x10000));
  let s = ((swapped & 0xff) << 8) | (swapped >>> 8);
  // At most three bytes are left, starting at an even distance from `start`.
  if (i + 2 <= stop) {
    s += view.getUint16(i);
    i += 2;
  }
  if (i < stop) s += view.getUint8(i) << 8;
  return fold(acc + s);
}

/** The unfolded sum of buf[start, end) as big-endian words, for short ranges (headers). */
function byteSum(buf: Uint8Array, start: number, end: number): number {
  let t = 0;
  let i = start;
  for (; i + 2 <= end; i += 2) t += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) t += buf[i]! << 8;
  return t;
}

/**
 * DataViews over whole ArrayBuffers, most recent first. Packet buffers are cut from a few
 * slabs (batch.ts), so two entries make creating a view (about as costly as summing 500 bytes)
 * rare; any other buffer simply gets a fresh view.
 */
let recent: DataView | null = null;
let previous: DataView | null = null;

function viewOf(buf: Uint8Array): DataView {
  const memory = buf.buffer;
  if (recent !== null && recent.buffer === memory) return recent;
  const found = previous !== null && previous.buffer === memory ? previous : new DataView(memory);
  previous = recent;
  recent = found;
  return found;
}

/** The folded pseudo-header sum of the IP packet at `ip` for a transport segment of `length` bytes. */
export function pseudoHeaderSum(buf: Uint8Array, ip: number, proto: number, length: number): number {
  const v6 = buf[ip]! >>> 4 === 6;
  const s = v6 ? byteSum(buf, ip + 8, ip + 40) : byteSum(buf, ip + 12, ip + 20);
  return fold(s + proto + length);
}
