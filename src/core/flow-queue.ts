/**
 * The transmit queue between the TUN and the data path: sparse flows first, CoDel on the rest.
 *
 * Why we need our own: the kernel's tun driver orphans every packet it queues (so TCP's small
 * queues see nothing in flight) and never stops its qdisc (so fq_codel there never holds a
 * packet). Its ring is a plain FIFO that a TCP flow fills whenever our process is the
 * bottleneck, and a ping or an ACK then waits behind milliseconds of bulk data. So the data
 * path drains the ring into this queue each time the TUN is readable, and takes packets out
 * in this order:
 *
 *   - sparse: a packet whose flow had nothing queued when it arrived (a ping, a DNS query, an
 *     ACK, the first packet of a burst) goes ahead of everything else, as in fq_codel's new
 *     flows. A flow's packets never overtake each other: a packet is sparse only if none of
 *     its flow's earlier packets are still queued.
 *   - bulk: everything else, first in first out, through CoDel (RFC 8289): once packets have
 *     waited longer than `target` for a whole `interval`, the oldest are dropped at a rising
 *     rate until the standing queue is gone, which tells TCP to slow down as a short ring
 *     would, but without dropping bursts. Bulk is also held to `bulkBytes`: beyond it the
 *     oldest goes, which is what keeps a TCP flow's data in flight, and so every queue on the
 *     way, short (docs/ARCHITECTURE.md, "Transmit queue").
 *
 * When the slots run short, the oldest bulk packet is dropped to make room (head drop), so the
 * ring can always be drained and a sparse packet never waits there behind bulk.
 *
 * The queue owns its slots' buffers. Packets come in and go out by swapping buffers with the
 * caller's batch (no copy). Pure: time is passed in, in milliseconds.
 */
import { allocPacketBuffers, type PacketBatch } from './batch.js';
import { Codel } from './codel.js';

/** Hash buckets for flows; colliding flows share a backlog, which only costs priority. */
const BUCKETS = 1024;

export interface FlowQueueOptions {
  /** Slots, i.e. packets (super-packets with offloads) held at most. */
  slots: number;
  /**
   * Bytes of bulk packets held at most; beyond it the oldest are dropped. Our CPU is the
   * bottleneck this queue sits in front of, so anything beyond about a burst is standing queue.
   */
  bulkBytes: number;
  /** CoDel target: standing queue delay tolerated, milliseconds. */
  targetMs: number;
  /** CoDel interval: how long the delay must stay above target before dropping, milliseconds. */
  intervalMs: number;
}

/** The kernel's fq_codel uses 5 ms / 100 ms for Internet paths; see docs/ARCHITECTURE.md for ours. */
export const DEFAULT_FLOW_QUEUE: FlowQueueOptions = { slots: 64, bulkBytes: 65536, targetMs: 1, intervalMs: 10 };

/** What is wrong with the options, or null. */
export function flowQueueProblem(o: FlowQueueOptions): string | null {
  if (!Number.isInteger(o.slots) || o.slots < 1 || o.slots > 65535)
    return `slots must be an integer from 1 to 65535, got ${o.slots}`;
  if (!Number.isInteger(o.bulkBytes) || o.bulkBytes < 1)
    return `bulkBytes must be a positive integer, got ${o.bulkBytes}`;
  if (!(o.targetMs > 0)) return `targetMs must be above 0, got ${o.targetMs}`;
  if (!(o.intervalMs >= o.targetMs)) return `intervalMs must be at least targetMs (${o.targetMs}), got ${o.intervalMs}`;
  return null;
}

/** A FIFO of slot indices in a fixed ring. */
class SlotFifo {
  private readonly ring: Int32Array;
  private head = 0;
  length = 0;

  constructor(capacity: number) {
    this.ring = new Int32Array(capacity);
  }

  push(slot: number): void {
    this.ring[(this.head + this.length) % this.ring.length] = slot;
    this.length++;
  }

  shift(): number {
    if (this.length === 0) return -1;
    const slot = this.ring[this.head]!;
    this.head = (this.head + 1) % this.ring.length;
    this.length--;
    return slot;
  }
}

export interface FlowQueueStats {
  /** Dropped by CoDel: bulk packets that stood in the queue too long. */
  codelDrops: number;
  /** Dropped because every slot was taken (the oldest bulk packet). */
  overflowDrops: number;
}

export class FlowQueue {
  readonly bufs: Buffer[];
  readonly offsets: Int32Array;
  readonly sizes: Int32Array;
  readonly stats: FlowQueueStats = { codelDrops: 0, overflowDrops: 0 };
  private readonly enqueuedAt: Float64Array;
  private readonly bucketOf: Int32Array;
  private readonly backlog = new Uint16Array(BUCKETS);
  private readonly free: Int32Array;
  private freeCount: number;
  private readonly sparse: SlotFifo;
  private readonly bulk: SlotFifo;
  private bulkBytes = 0;
  private largest = 0;
  private readonly codel: Codel;
  private readonly bulkLimit: number;

  /** `drops.queue` counts every packet the queue drops, as stats does in detail. */
  constructor(
    options: FlowQueueOptions,
    bufferSize: number,
    private readonly drops: { queue: number } = { queue: 0 },
  ) {
    const problem = flowQueueProblem(options);
    if (problem !== null) throw new RangeError(problem);
    const n = options.slots;
    this.codel = new Codel(options.targetMs, options.intervalMs);
    this.bulkLimit = options.bulkBytes;
    this.bufs = allocPacketBuffers(n, bufferSize);
    this.offsets = new Int32Array(n);
    this.sizes = new Int32Array(n);
    this.enqueuedAt = new Float64Array(n);
    this.bucketOf = new Int32Array(n);
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.freeCount = n;
    this.sparse = new SlotFifo(n);
    this.bulk = new SlotFifo(n);
  }

  /** Free slots. */
  get room(): number {
    return this.freeCount;
  }

  /** Packets queued. */
  get length(): number {
    return this.sparse.length + this.bulk.length;
  }

  /**
   * Takes packet i of `from` into a free slot: the slot's spare buffer goes to `from` in its
   * place. `flow` is the packet's flow hash (see flowHash). The caller checks `room` first.
   */
  push(from: PacketBatch, i: number, flow: number, now: number): void {
    if (this.freeCount === 0) throw new RangeError('flow queue is full: check room (or dropOldestBulk) before push');
    const slot = this.free[--this.freeCount]!;
    const spare = this.bufs[slot]!;
    this.bufs[slot] = from.bufs[i]!;
    from.bufs[i] = spare;
    const size = from.sizes[i]!;
    this.offsets[slot] = from.offsets[i]!;
    this.sizes[slot] = size;
    this.enqueuedAt[slot] = now;
    const bucket = flow & (BUCKETS - 1);
    this.bucketOf[slot] = bucket;
    const before = this.backlog[bucket]!;
    this.backlog[bucket] = before + 1;
    if (before === 0) {
      this.sparse.push(slot);
    } else {
      this.bulk.push(slot);
      this.bulkBytes += size;
      if (size > this.largest) this.largest = size;
      // Over the byte limit: the oldest bulk goes (never the packet just queued).
      while (this.bulkBytes > this.bulkLimit && this.bulk.length > 1) this.dropOldestBulk();
    }
  }

  /**
   * The next packet to send, sparse ones first, or -1 when empty. Its slot stays taken (the
   * caller reads or swaps its buffer) until release(). Bulk packets pass CoDel here, which may
   * drop some on the way.
   */
  pop(now: number): number {
    const slot = this.sparse.shift();
    if (slot >= 0) {
      this.backlog[this.bucketOf[slot]!]!--;
      return slot;
    }
    return this.popBulk(now);
  }

  /** Gives a slot back after pop(). */
  release(slot: number): void {
    this.free[this.freeCount++] = slot;
  }

  /** Drops the oldest bulk packet to make room; false if there is none. */
  dropOldestBulk(): boolean {
    const slot = this.shiftBulk();
    if (slot < 0) return false;
    this.stats.overflowDrops++;
    this.drops.queue++;
    this.release(slot);
    return true;
  }

  private shiftBulk(): number {
    const slot = this.bulk.shift();
    if (slot < 0) return -1;
    this.backlog[this.bucketOf[slot]!]!--;
    this.bulkBytes -= this.sizes[slot]!;
    return slot;
  }

  /** The oldest bulk packet that CoDel lets through, dropping those it does not. */
  private popBulk(now: number): number {
    for (;;) {
      const slot = this.shiftBulk();
      if (slot < 0) {
        this.codel.empty();
        return -1;
      }
      // Standing: more than about one packet is left behind this one (RFC 8289's MAXPACKET test).
      if (!this.codel.shouldDrop(now - this.enqueuedAt[slot]!, now, this.bulkBytes > this.largest)) return slot;
      this.stats.codelDrops++;
      this.drops.queue++;
      this.release(slot);
    }
  }
}

/**
 * A flow's hash from its IP header: addresses, protocol and, for TCP and UDP (unfragmented),
 * ports. Anything unparsable hashes to 0, one shared flow.
 */
export function flowHash(buf: Uint8Array, offset: number, size: number): number {
  if (size < 1) return 0;
  const version = buf[offset]! >>> 4;
  let h = 0x811c9dc5;
  let proto: number;
  let l4: number;
  if (version === 4 && size >= 20) {
    for (let i = 12; i < 20; i++) h = Math.imul(h ^ buf[offset + i]!, 0x01000193);
    proto = buf[offset + 9]!;
    const fragmented = ((buf[offset + 6]! & 0x3f) | buf[offset + 7]!) !== 0;
    l4 = fragmented ? -1 : offset + (buf[offset]! & 0x0f) * 4;
  } else if (version === 6 && size >= 40) {
    for (let i = 8; i < 40; i++) h = Math.imul(h ^ buf[offset + i]!, 0x01000193);
    proto = buf[offset + 6]!;
    l4 = offset + 40;
  } else {
    return 0;
  }
  h = Math.imul(h ^ proto, 0x01000193);
  if ((proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= offset + size) {
    for (let i = 0; i < 4; i++) h = Math.imul(h ^ buf[l4 + i]!, 0x01000193);
  }
  return h >>> 0;
}
