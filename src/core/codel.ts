/**
 * CoDel (RFC 8289), asked one packet at a time: "this packet waited `sojourn` ms; drop it?".
 *
 * A queue that a TCP flow fills stays full (a standing queue) and adds its delay to every
 * packet behind it. CoDel tells that apart from a burst, which drains by itself: only once
 * packets have waited longer than `target` for a whole `interval` does it start dropping, one
 * packet, then at intervals shrinking as 1/sqrt(drops), until the wait falls below target.
 * Each drop makes a TCP sender halve its rate (Cubic: to 0.7) once per round trip.
 *
 * Used on bulk packets leaving the transmit flow queue (core/flow-queue.ts). Pure: times in ms.
 */
export class Codel {
  private firstAboveTime = 0;
  private dropping = false;
  private dropNext = 0;
  private count = 0;
  private lastCount = 0;

  constructor(
    readonly target: number,
    readonly interval: number,
  ) {}

  /** Whether CoDel is dropping now (for tests and stats). */
  get isDropping(): boolean {
    return this.dropping;
  }

  /**
   * Decides for one packet leaving the queue after waiting `sojourn` ms. `standing` says the
   * queue holds more than about one packet: a lone packet is never a standing queue, however
   * long it waited.
   */
  shouldDrop(sojourn: number, now: number, standing = true): boolean {
    const ok = this.okToDrop(sojourn, now, standing);
    if (this.dropping) {
      if (!ok) {
        this.dropping = false;
        return false;
      }
      if (now < this.dropNext) return false;
      this.count++;
      this.dropNext = this.controlLaw(this.dropNext);
      return true;
    }
    if (!ok) return false;
    this.dropping = true;
    // Coming back soon after the last dropping spell: resume near its drop rate (hysteresis).
    const delta = this.count - this.lastCount;
    this.count = delta > 1 && now - this.dropNext < 16 * this.interval ? delta : 1;
    this.dropNext = this.controlLaw(now);
    this.lastCount = this.count;
    return true;
  }

  /** The queue ran empty: no standing queue any more. */
  empty(): void {
    this.firstAboveTime = 0;
    this.dropping = false;
  }

  private okToDrop(sojourn: number, now: number, standing: boolean): boolean {
    if (sojourn < this.target || !standing) {
      this.firstAboveTime = 0;
      return false;
    }
    if (this.firstAboveTime === 0) {
      this.firstAboveTime = now + this.interval;
      return false;
    }
    return now >= this.firstAboveTime;
  }

  private controlLaw(t: number): number {
    return t + this.interval / Math.sqrt(this.count);
  }
}
