/**
 * OpenVPN over TCP: the stream carries each packet behind a 2-byte big-endian length (the
 * length excludes the prefix itself). Upstream facts this follows:
 *   - the Linux ovpn module's stream parser aborts the stream on a length below 2, and deletes
 *     the peer with TRANSPORT_ERROR when a packet is too short to hold the 4-byte opcode/peer-id
 *     word; so no length below 4 can be valid, and the stream cannot be resynchronised;
 *   - OpenVPN 2.6's stream buffer refuses a length of 0 or above its buffer size and restarts.
 * A bad length therefore ends the stream: `StreamDeframer.push` reports it and takes no more.
 */
import { HEADROOM, type PacketBatch } from './batch.js';

/** Bytes of the length prefix in front of every packet on the stream. */
export const LENGTH_SIZE = 2;
/** Shortest packet on the stream: the module cannot classify anything below its 4-byte opcode word. */
export const MIN_STREAM_PACKET = 4;
/** Longest packet the 16-bit prefix can describe. */
export const MAX_STREAM_PACKET = 0xffff;

/** `partial` before its first use, and the size it starts at when a frame first spans chunks. */
const EMPTY = Buffer.alloc(0);
const PARTIAL_START = 2048;

/** Can a packet of this size go on the stream? Also false for DROPPED (-1). */
export function isFramable(size: number): boolean {
  return size >= MIN_STREAM_PACKET && size <= MAX_STREAM_PACKET;
}

/**
 * Cuts a byte stream back into packets. push() only validates lengths and queues the chunk (no
 * copy); drain() copies complete packets straight from the chunks into batch buffers at
 * HEADROOM. A packet split across chunks is the only one copied twice: its start waits in
 * `partial` (at most 2 + maxPacket bytes), so a chunk is never kept alive for its tail.
 * `partial` grows with what has arrived, not with what a length prefix promises: a server
 * accepts connections from anyone, and one that sends nothing, or a prefix and a trickle,
 * must cost next to nothing.
 * This code allocates nothing per packet. (Node 20's Buffer#copy itself wraps a source range
 * that does not start at 0 in a short-lived Uint8Array view; a JavaScript byte loop avoids that
 * but is far slower (bench/results/tcp-framing.md), so copy() it is.)
 */
export class StreamDeframer {
  /** The start of a frame (prefix included) whose end has not been queued yet. */
  private partial: Buffer = EMPTY;
  private partialLen = 0;
  /** Chunks queued by push() and not yet drained; chunks[0] is read from readOff on. */
  private readonly chunks: Buffer[] = [];
  private readOff = 0;
  /** Validation walks ahead of drain(): body bytes of the current frame it has yet to pass... */
  private scanSkip = 0;
  /** ...and the first byte of a length prefix split between two chunks, or -1. */
  private scanHigh = -1;
  private bad = -1;

  constructor(readonly maxPacket: number) {
    if (!Number.isInteger(maxPacket) || maxPacket < MIN_STREAM_PACKET || maxPacket > MAX_STREAM_PACKET) {
      throw new RangeError(
        `maxPacket must be an integer from ${MIN_STREAM_PACKET} to ${MAX_STREAM_PACKET}, got ${maxPacket}`,
      );
    }
  }

  /** Bytes set aside for a frame that spans chunks (grown on demand, kept for reuse). */
  get reservedBytes(): number {
    return this.partial.length;
  }

  /** The invalid length that ended the stream, or -1 while it is sound. */
  get invalidLength(): number {
    return this.bad;
  }

  /**
   * Queues a chunk read from the stream. Returns false if it holds a length that cannot be valid
   * (below MIN_STREAM_PACKET or above maxPacket); packets before that length can still be
   * drained, nothing after it is taken, and every later push() returns false too.
   */
  push(chunk: Buffer): boolean {
    if (this.bad >= 0) return false;
    const good = this.scan(chunk);
    const kept = good === chunk.length ? chunk : chunk.subarray(0, good);
    if (kept.length > 0) this.chunks.push(kept);
    return this.bad < 0;
  }

  /** Walks the length prefixes of a chunk; returns where an invalid one starts, or chunk.length. */
  private scan(chunk: Buffer): number {
    const n = chunk.length;
    let i = 0;
    if (this.scanHigh >= 0 && n > 0) {
      // A bad prefix that began in the previous chunk leaves nothing of this one to keep.
      if (!this.accept((this.scanHigh << 8) | chunk[0]!)) return 0;
      this.scanHigh = -1;
      i = 1;
    }
    while (i < n) {
      if (this.scanSkip > 0) {
        const step = Math.min(this.scanSkip, n - i);
        this.scanSkip -= step;
        i += step;
      } else if (i + 1 < n) {
        if (!this.accept((chunk[i]! << 8) | chunk[i + 1]!)) return i;
        i += LENGTH_SIZE;
      } else {
        this.scanHigh = chunk[i]!;
        i++;
      }
    }
    return n;
  }

  private accept(length: number): boolean {
    if (length < MIN_STREAM_PACKET || length > this.maxPacket) {
      this.bad = length;
      return false;
    }
    this.scanSkip = length;
    return true;
  }

  /**
   * Moves complete packets into `batch` from index batch.count on, each at HEADROOM in its own
   * buffer, until the batch is full or no complete packet is left; returns how many it added.
   * The rest stays queued for the next call: call until it returns 0.
   */
  drain(batch: PacketBatch): number {
    const capacity = batch.bufs.length;
    let added = 0;
    while (batch.count < capacity) {
      if (this.partialLen > 0) {
        if (!this.completePartial(batch)) break;
        added++;
        continue;
      }
      const chunk = this.chunks[0];
      if (chunk === undefined) break;
      const at = this.readOff;
      const avail = chunk.length - at;
      if (avail >= LENGTH_SIZE) {
        const length = (chunk[at]! << 8) | chunk[at + 1]!;
        if (avail >= LENGTH_SIZE + length) {
          place(batch, chunk, at + LENGTH_SIZE, length);
          this.consume(chunk, LENGTH_SIZE + length);
          added++;
          continue;
        }
      }
      // This frame ends in a later chunk, or has not arrived yet: keep its start aside.
      this.stash(chunk, at, chunk.length);
      this.consume(chunk, avail);
    }
    return added;
  }

  /** Finishes the frame begun in `partial` if the queued chunks hold the rest of it. */
  private completePartial(batch: PacketBatch): boolean {
    while (this.partialLen < LENGTH_SIZE) {
      const chunk = this.chunks[0];
      if (chunk === undefined) return false;
      this.stash(chunk, this.readOff, this.readOff + 1);
      this.consume(chunk, 1);
    }
    const length = (this.partial[0]! << 8) | this.partial[1]!;
    let missing = LENGTH_SIZE + length - this.partialLen;
    if (this.queuedBytes() < missing) {
      for (let chunk = this.chunks[0]; chunk !== undefined; chunk = this.chunks[0]) {
        this.stash(chunk, this.readOff, chunk.length);
        this.consume(chunk, chunk.length - this.readOff);
      }
      return false;
    }
    const buf = slotFor(batch, length);
    this.partial.copy(buf, HEADROOM, LENGTH_SIZE, this.partialLen);
    let to = HEADROOM + this.partialLen - LENGTH_SIZE;
    while (missing > 0) {
      const chunk = this.chunks[0]!;
      const n = Math.min(missing, chunk.length - this.readOff);
      chunk.copy(buf, to, this.readOff, this.readOff + n);
      this.consume(chunk, n);
      to += n;
      missing -= n;
    }
    this.partialLen = 0;
    commit(batch, length);
    return true;
  }

  private queuedBytes(): number {
    let total = -this.readOff;
    for (const chunk of this.chunks) total += chunk.length;
    return total;
  }

  private stash(chunk: Buffer, from: number, to: number): void {
    const need = this.partialLen + to - from;
    if (need > this.partial.length) this.grow(need);
    chunk.copy(this.partial, this.partialLen, from, to);
    this.partialLen += to - from;
  }

  /** Doubles `partial` (from PARTIAL_START) until `need` fits; never past one whole frame. */
  private grow(need: number): void {
    let size = Math.max(this.partial.length, PARTIAL_START);
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafeSlow(Math.min(size, LENGTH_SIZE + this.maxPacket));
    this.partial.copy(grown, 0, 0, this.partialLen);
    this.partial = grown;
  }

  /** Advances past n bytes of chunks[0], dropping it once read to the end. */
  private consume(chunk: Buffer, n: number): void {
    this.readOff += n;
    if (this.readOff === chunk.length) {
      this.chunks.shift();
      this.readOff = 0;
    }
  }
}

/** The buffer of the next free slot of a batch, checked to hold a packet of `length` at HEADROOM. */
function slotFor(batch: PacketBatch, length: number): Buffer {
  const buf = batch.bufs[batch.count]!;
  if (HEADROOM + length > buf.length) {
    throw new RangeError(
      `batch buffers of ${buf.length} bytes cannot hold a ${length}-byte packet at offset ${HEADROOM}; use newBatch with a larger capacity`,
    );
  }
  return buf;
}

function place(batch: PacketBatch, src: Buffer, from: number, length: number): void {
  src.copy(slotFor(batch, length), HEADROOM, from, from + length);
  commit(batch, length);
}

function commit(batch: PacketBatch, length: number): void {
  const i = batch.count;
  batch.offsets[i] = HEADROOM;
  batch.sizes[i] = length;
  batch.count = i + 1;
}

/** Bytes frameRange produces for packets start..end-1 (packets that cannot be framed excluded). */
export function framedLength(batch: PacketBatch, start: number, end: number): number {
  checkRange(batch, start, end);
  const { sizes } = batch;
  let total = 0;
  for (let i = start; i < end; i++) {
    const size = sizes[i]!;
    if (isFramable(size)) total += LENGTH_SIZE + size;
  }
  return total;
}

/**
 * The stream form of packets start..end-1 of a batch, in one buffer for a single socket write.
 * Packets that cannot be framed (DROPPED, shorter than MIN_STREAM_PACKET, longer than 65535) are
 * left out: a peer would have to close the stream on them.
 *
 * Each packet is copied once, behind its length, into `into` (whose first framedLength() bytes
 * are returned) or, without it, into a new buffer. The batch itself is not touched: copying the
 * 2-byte length with the packet costs the same wherever the length is written, and measured
 * against Buffer.concat over headroom views this is cheaper (bench/results/tcp-framing.md).
 * A socket keeps the buffer until the write's callback: only then may `into` be reused.
 */
export function frameRange(batch: PacketBatch, start: number, end: number, into?: Buffer): Buffer {
  const total = framedLength(batch, start, end);
  if (into !== undefined && into.length < total) {
    throw new RangeError(`frameRange needs ${total} bytes, the buffer given has ${into.length}`);
  }
  const out = into ?? Buffer.allocUnsafe(total);
  const { bufs, offsets, sizes } = batch;
  let at = 0;
  for (let i = start; i < end; i++) {
    const size = sizes[i]!;
    if (!isFramable(size)) continue;
    out[at] = size >>> 8;
    out[at + 1] = size & 0xff;
    const offset = offsets[i]!;
    bufs[i]!.copy(out, at + LENGTH_SIZE, offset, offset + size);
    at += LENGTH_SIZE + size;
  }
  return out.length === total ? out : out.subarray(0, total);
}

function checkRange(batch: PacketBatch, start: number, end: number): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > batch.count) {
    throw new RangeError(`packet range ${start}..${end} is outside the batch's ${batch.count} packets`);
  }
}
