/**
 * Control packets on their way up to the control plane. Anyone can send them (they are not
 * authenticated here), so what they may cost is bounded: a queue of at most `slots` packets and
 * `bytes` bytes, where a new packet pushes the oldest out, drained at most `rate` packets per
 * second (a token bucket with a burst of `burst`), a few per turn of the event loop, so that a
 * flood can neither grow memory nor starve the data path. Every packet pushed out is counted.
 *
 * A flood keeps the queue full, so each waiting packet outlives several young-generation
 * collections. Held as objects, every one would be promoted and die in V8's old generation,
 * which then grows its limit and keeps the pages. So a waiting packet is only bytes: its data in
 * one ring allocated once, its sender as the raw endpoint slot, decoded when it is handed up.
 */
import { ENDPOINT_SIZE, type Endpoint, readEndpoint } from '../core/endpoint.js';
import type { Clock, Timer } from '../edge/edges.js';

export interface ControlQueueOptions {
  slots: number;
  bytes: number;
  /** Packets per second handed up, sustained. */
  rate: number;
  /** Packets handed up at once after a quiet period. */
  burst: number;
}

export const DEFAULT_CONTROL_QUEUE: ControlQueueOptions = { slots: 1024, bytes: 1 << 20, rate: 2000, burst: 256 };

/** Handed up per turn of the event loop at most, so the data path gets its turns in between. */
const PER_TURN = 64;

/** A packet handed up: the copy is the receiver's to keep. */
export type HandUp = (peerId: number | null, localPort: number, remote: Endpoint, data: Buffer) => void;

const NO_PEER = -1;

export class ControlQueue {
  /** The packets' bytes, back to back in arrival order, wrapping at the end. */
  private ring: Buffer | null = null;
  /** Where the next packet's bytes go. */
  private writeAt = 0;
  private readonly starts: Int32Array;
  private readonly lengths: Int32Array;
  private readonly peerIds: Int32Array;
  private readonly localPorts: Int32Array;
  /** The sender, when it came decoded (a TCP link's); else its slot in `endpoints`. */
  private readonly remotes: (Endpoint | null)[];
  private readonly endpoints: Buffer;
  /** Slot of the oldest packet, and how many wait. */
  private head = 0;
  private count = 0;
  private tokens: number;
  private lastRefill: number;
  private scheduled: NodeJS.Immediate | null = null;
  /** Waiting for the next token, on the interface's clock. */
  private waiting: Timer | null = null;
  private stopped = false;

  constructor(
    private readonly options: ControlQueueOptions,
    private readonly clock: Clock,
    private readonly handUp: HandUp,
    /** Called with the number of packets pushed out. */
    private readonly dropped: (count: number) => void,
  ) {
    const { slots } = options;
    this.starts = new Int32Array(slots);
    this.lengths = new Int32Array(slots);
    this.peerIds = new Int32Array(slots);
    this.localPorts = new Int32Array(slots);
    this.remotes = new Array<Endpoint | null>(slots).fill(null);
    this.endpoints = Buffer.alloc(slots * ENDPOINT_SIZE);
    this.tokens = options.burst;
    this.lastRefill = clock.now();
  }

  get length(): number {
    return this.count;
  }

  /** A packet from a decoded sender (a TCP link's, which lives as long as the link). */
  push(peerId: number | null, localPort: number, remote: Endpoint, data: Uint8Array): void {
    const at = this.enqueue(peerId, localPort, data);
    if (at >= 0) this.remotes[at] = remote;
  }

  /** A packet whose sender is slot `slot` of a receive batch's endpoint buffer (UDP). */
  pushFromSlot(peerId: number | null, localPort: number, endpoints: Buffer, slot: number, data: Uint8Array): void {
    const at = this.enqueue(peerId, localPort, data);
    if (at >= 0) endpoints.copy(this.endpoints, at * ENDPOINT_SIZE, slot * ENDPOINT_SIZE, (slot + 1) * ENDPOINT_SIZE);
  }

  stop(): void {
    this.stopped = true;
    this.clear();
    this.ring = null;
    this.cancel();
  }

  /** Copies the packet in, pushing out the oldest until it fits; returns its slot, or -1 if dropped. */
  private enqueue(peerId: number | null, localPort: number, data: Uint8Array): number {
    if (this.stopped) return -1;
    const { slots, bytes } = this.options;
    if (data.length > bytes) {
      this.dropped(1);
      return -1;
    }
    let pushedOut = 0;
    let start = this.place(data.length);
    while (this.count === slots || start < 0) {
      this.shift();
      pushedOut++;
      start = this.place(data.length);
    }
    if (pushedOut > 0) this.dropped(pushedOut);
    this.ring ??= Buffer.allocUnsafeSlow(bytes);
    this.ring.set(data, start);
    this.writeAt = start + data.length;
    const at = (this.head + this.count) % slots;
    this.starts[at] = start;
    this.lengths[at] = data.length;
    this.peerIds[at] = peerId ?? NO_PEER;
    this.localPorts[at] = localPort;
    this.remotes[at] = null;
    this.count++;
    if (this.waiting === null) this.schedule();
    return at;
  }

  /** Where `size` bytes go without touching a waiting packet's, or -1 while they would. */
  private place(size: number): number {
    const capacity = this.options.bytes;
    if (this.count === 0) return 0;
    const oldest = this.starts[this.head]!;
    const end = this.writeAt;
    // Waiting bytes run from oldest to end, or from oldest to the ring's end and on from 0.
    if (oldest < end) {
      if (end + size <= capacity) return end;
      return size <= oldest ? 0 : -1;
    }
    return end + size <= oldest ? end : -1;
  }

  /** Forgets the oldest packet. */
  private shift(): void {
    const at = this.head;
    this.remotes[at] = null;
    this.head = (at + 1) % this.options.slots;
    this.count--;
    if (this.count === 0) this.writeAt = 0;
  }

  private clear(): void {
    while (this.count > 0) this.shift();
  }

  private drain(): void {
    this.scheduled = null;
    this.refill();
    for (let n = 0; n < PER_TURN && this.tokens >= 1 && this.count > 0 && !this.stopped; n++) {
      this.tokens--;
      this.handUpOldest();
    }
    if (this.count === 0 || this.stopped) return;
    // Out of tokens: come back when the next one is due; else on the next turn.
    if (this.tokens >= 1) this.schedule();
    else
      this.waiting ??= this.clock.after(Math.ceil(1000 / this.options.rate), () => {
        this.waiting = null;
        this.schedule();
      });
  }

  private handUpOldest(): void {
    const at = this.head;
    const start = this.starts[at]!;
    const data = Buffer.from(this.ring!.subarray(start, start + this.lengths[at]!));
    const remote = this.remotes[at] ?? readEndpoint(this.endpoints, at);
    const peerId = this.peerIds[at]!;
    const localPort = this.localPorts[at]!;
    this.shift();
    this.handUp(peerId === NO_PEER ? null : peerId, localPort, remote, data);
  }

  private refill(): void {
    const now = this.clock.now();
    const earned = ((now - this.lastRefill) * this.options.rate) / 1000;
    this.tokens = Math.min(this.options.burst, this.tokens + earned);
    this.lastRefill = now;
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(() => this.drain());
  }

  private cancel(): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.waiting?.cancel();
    this.waiting = null;
  }
}
