/**
 * Reading the TUN into the transmit batch, through the flow queue (core/flow-queue.ts).
 *
 * Each call first drains the TUN's ring into the queue: the ring is a FIFO we cannot reorder or
 * shorten, so a ping should not stay in it behind bulk data. Then packets come out of the queue
 * (sparse flows first, CoDel on the rest) into the batch's slots. With offloads (virtio_net_hdr),
 * one queued TCP super-packet of up to 64 KiB becomes ~45 packets; one that does not fit in
 * what is left of the batch is continued by the next call. `pending` says there is more: the
 * caller must call again even if the TUN is not readable any more.
 */
import { BUFFER_SIZE, HEADROOM, newBatch, type PacketBatch } from '../core/batch.js';
import type { DropCounters } from '../core/drops.js';
import { FlowQueue, type FlowQueueOptions, flowHash } from '../core/flow-queue.js';
import { completeChecksum, segmentCount, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, writeSegment } from '../core/gso.js';

/** Reads per native call, at most. */
const RAW_SLOTS = 16;
/** Native reads per call, at most: enough to drain a ring of 128 packets. */
const MAX_READS = 8;

/** What the reader needs of a TUN device. */
export interface PacketSource {
  read(batch: PacketBatch, max: number): number;
}

export class TunReader {
  private readonly queue: FlowQueue;
  private readonly landing: PacketBatch = newBatch(RAW_SLOTS);
  /** Bytes in front of each packet read: the virtio_net_hdr with offloads, none without. */
  private readonly header: number;
  /** The queued packet being cut into segments (-1: none), its next segment and segment count. */
  private current = -1;
  private segment = 0;
  private segments = 0;

  constructor(
    private readonly tun: PacketSource,
    private readonly drops: DropCounters,
    readonly offloads: boolean,
    options: FlowQueueOptions,
  ) {
    this.header = offloads ? VNET_HDR_LEN : 0;
    this.queue = new FlowQueue(options, BUFFER_SIZE, drops);
  }

  /** The flow queue's length, size and drops, for iface-get. */
  queueInfo(): { length: number; slots: number; codelDrops: number; overflowDrops: number } {
    const q = this.queue;
    return {
      length: q.length,
      slots: q.length + q.room,
      codelDrops: q.stats.codelDrops,
      overflowDrops: q.stats.overflowDrops,
    };
  }

  get pending(): boolean {
    return this.current >= 0 || this.queue.length > 0;
  }

  /** Fills `out` from slot 0, sparse packets first; returns and sets out.count. */
  read(out: PacketBatch, now: number): number {
    this.drain(now);
    const cap = out.bufs.length;
    let n = 0;
    while (n < cap) {
      if (this.current < 0) {
        this.current = this.queue.pop(now);
        if (this.current < 0) break;
        this.segment = 0;
        this.segments = 0;
      }
      n = this.cut(out, n, cap);
    }
    out.count = n;
    return n;
  }

  /**
   * Moves what the TUN has into the queue while it has room. Once it is full, one more read may
   * push the oldest bulk packets out, so that a sparse packet just behind them in the ring is
   * still found; reading on would only take packets from the ring to drop them here, which
   * costs a read each while the ring would have dropped them for free.
   */
  private drain(now: number): void {
    const { landing, queue } = this;
    let overdrawn = false;
    for (let reads = 0; reads < MAX_READS; reads++) {
      if (queue.room < RAW_SLOTS) {
        if (overdrawn) return;
        overdrawn = true;
        for (let i = queue.room; i < RAW_SLOTS && queue.dropOldestBulk(); i++);
      }
      const want = Math.min(RAW_SLOTS, queue.room);
      if (want === 0) return;
      landing.offsets.fill(HEADROOM - this.header);
      const got = this.tun.read(landing, want);
      for (let j = 0; j < got; j++) {
        // A read that filled its slot may have been cut by the TUN (the shim says -1): dropped.
        if (landing.sizes[j]! < 0) {
          this.drops.malformed++;
          continue;
        }
        const at = landing.offsets[j]! + this.header;
        queue.push(landing, j, flowHash(landing.bufs[j]!, at, landing.sizes[j]! - this.header), now);
      }
      if (got < want) return;
    }
  }

  /** Moves the current packet, or what is left of it, into out[n..cap); returns the new n. */
  private cut(out: PacketBatch, start: number, cap: number): number {
    const q = this.queue;
    const slot = this.current;
    const buf = q.bufs[slot]!;
    const hdr = q.offsets[slot]!;
    const size = q.sizes[slot]!;
    let n = start;
    if (this.segments === 0) {
      this.segments = this.offloads ? segmentCount(buf, hdr, size) : 1;
      if (this.segments === 1 && (!this.offloads || buf[hdr + 1] === 0)) {
        // Not segmented: complete the checksum if asked, then hand the buffer over as it is.
        if (this.offloads && (buf[hdr]! & VNET_F_NEEDS_CSUM) !== 0 && !completeChecksum(buf, hdr, size)) {
          this.drops.malformed++;
        } else {
          q.bufs[slot] = out.bufs[n]!;
          out.bufs[n] = buf;
          out.offsets[n] = hdr + this.header;
          out.sizes[n] = size - this.header;
          n++;
        }
        this.finish();
        return n;
      }
      if (this.segments === 0) {
        this.drops.malformed++;
        this.finish();
        return n;
      }
    }
    while (this.segment < this.segments && n < cap) {
      out.offsets[n] = HEADROOM;
      out.sizes[n] = writeSegment(buf, hdr, size, this.segment, out.bufs[n]!, HEADROOM);
      this.segment++;
      n++;
    }
    if (this.segment >= this.segments) this.finish();
    return n;
  }

  private finish(): void {
    this.queue.release(this.current);
    this.current = -1;
  }
}
