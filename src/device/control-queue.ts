/**
 * Control packets on their way up to the control plane. Anyone can send them (they are not
 * authenticated here), so what they may cost is bounded: a queue of at most `slots` packets and
 * `bytes` bytes, where a new packet pushes the oldest out, drained at most `rate` packets per
 * second (a token bucket with a burst of `burst`), a few per turn of the event loop, so that a
 * flood can neither grow memory nor starve the data path. Every packet pushed out is counted.
 */
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

export class ControlQueue<T extends { data: Buffer }> {
  private readonly queue: T[] = [];
  private queuedBytes = 0;
  private tokens: number;
  private lastRefill: number;
  private scheduled: NodeJS.Immediate | null = null;
  /** Waiting for the next token, on the interface's clock. */
  private waiting: Timer | null = null;
  private stopped = false;

  constructor(
    private readonly options: ControlQueueOptions,
    private readonly clock: Clock,
    private readonly handUp: (item: T) => void,
    /** Called with the number of packets pushed out. */
    private readonly dropped: (count: number) => void,
  ) {
    this.tokens = options.burst;
    this.lastRefill = clock.now();
  }

  get length(): number {
    return this.queue.length;
  }

  push(item: T): void {
    if (this.stopped) return;
    this.queue.push(item);
    this.queuedBytes += item.data.length;
    let pushedOut = 0;
    while (this.queue.length > this.options.slots || this.queuedBytes > this.options.bytes) {
      this.queuedBytes -= this.queue.shift()!.data.length;
      pushedOut++;
    }
    if (pushedOut > 0) this.dropped(pushedOut);
    if (this.waiting === null) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.cancel();
  }

  private drain(): void {
    this.scheduled = null;
    this.refill();
    for (let n = 0; n < PER_TURN && this.tokens >= 1 && this.queue.length > 0 && !this.stopped; n++) {
      const item = this.queue.shift()!;
      this.queuedBytes -= item.data.length;
      this.tokens--;
      this.handUp(item);
    }
    if (this.queue.length === 0 || this.stopped) return;
    // Out of tokens: come back when the next one is due; else on the next turn.
    if (this.tokens >= 1) this.schedule();
    else
      this.waiting ??= this.clock.after(Math.ceil(1000 / this.options.rate), () => {
        this.waiting = null;
        this.schedule();
      });
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
