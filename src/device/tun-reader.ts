/**
 * Reading a TUN opened with virtio_net_hdr into the transmit batch. One read can return a TCP
 * super-packet of up to 64 KiB that becomes ~45 packets, so reads go into a small batch of
 * their own (`raw`) and are then cut into the transmit batch's slots (as wireguard-go does).
 * A super-packet that does not fit in what is left of the batch is continued by the next call:
 * `pending` says so, and the caller must call again even if the TUN is not readable any more.
 */
import { HEADROOM, newBatch, type PacketBatch } from '../core/batch.js';
import type { DropCounters } from '../core/drops.js';
import { completeChecksum, segmentCount, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, writeSegment } from '../core/gso.js';
import type { TunDevice } from '../edge/tun.js';

/** Reads per native call, at most. */
const RAW_SLOTS = 16;

export class OffloadReader {
  private readonly raw: PacketBatch = newBatch(RAW_SLOTS);
  /** Raw reads not yet (fully) cut: raw[next..count), segment `segment` of raw[next]. */
  private next = 0;
  private segment = 0;
  private segments = 0;
  /** Largest number of segments one read made lately: how much room the next read may need. */
  private expect = 1;

  constructor(
    private readonly tun: TunDevice,
    private readonly drops: DropCounters,
  ) {}

  get pending(): boolean {
    return this.next < this.raw.count;
  }

  /** Fills `out` from slot 0 (offsets HEADROOM); returns and sets out.count. */
  read(out: PacketBatch): number {
    const cap = out.bufs.length;
    let n = 0;
    for (;;) {
      n = this.cut(out, n, cap);
      if (n >= cap) break;
      const room = cap - n;
      if (n > 0 && room < this.expect) break;
      const want = Math.max(1, Math.min(RAW_SLOTS, Math.floor(room / this.expect)));
      const raw = this.raw;
      raw.offsets.fill(HEADROOM - VNET_HDR_LEN);
      raw.count = 0;
      const got = this.tun.read(raw, want);
      this.next = 0;
      this.segment = 0;
      this.segments = 0;
      if (got === 0) break;
      let most = 1;
      for (let j = 0; j < got; j++) {
        const c = segmentCount(raw.bufs[j]!, raw.offsets[j]!, raw.sizes[j]!);
        if (c > most) most = c;
      }
      this.expect = most;
    }
    out.count = n;
    return n;
  }

  /** Moves pending raw reads into out[n..cap); returns the new n. */
  private cut(out: PacketBatch, start: number, cap: number): number {
    const raw = this.raw;
    let n = start;
    while (this.next < raw.count && n < cap) {
      const j = this.next;
      const buf = raw.bufs[j]!;
      const hdr = raw.offsets[j]!;
      const size = raw.sizes[j]!;
      if (this.segments === 0) {
        this.segments = segmentCount(buf, hdr, size);
        if (this.segments === 1 && buf[hdr + 1] === 0) {
          // Not segmented: complete the checksum if asked, then hand the buffer over as it is.
          if ((buf[hdr]! & VNET_F_NEEDS_CSUM) !== 0 && !completeChecksum(buf, hdr, size)) {
            this.drops.malformed++;
          } else {
            const spare = out.bufs[n]!;
            out.bufs[n] = buf;
            raw.bufs[j] = spare;
            out.offsets[n] = hdr + VNET_HDR_LEN;
            out.sizes[n] = size - VNET_HDR_LEN;
            n++;
          }
          this.advance();
          continue;
        }
        if (this.segments === 0) {
          this.drops.malformed++;
          this.advance();
          continue;
        }
      }
      while (this.segment < this.segments && n < cap) {
        out.offsets[n] = HEADROOM;
        out.sizes[n] = writeSegment(buf, hdr, size, this.segment, out.bufs[n]!, HEADROOM);
        this.segment++;
        n++;
      }
      if (this.segment >= this.segments) this.advance();
    }
    return n;
  }

  private advance(): void {
    this.next++;
    this.segment = 0;
    this.segments = 0;
  }
}
