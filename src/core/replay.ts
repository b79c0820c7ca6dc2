/**
 * Receive-side replay protection: a sliding bitmap of the last 2048 packet-ids (the window size
 * of ovpn-dco). `check` is the cheap pre-filter run before decryption; `accept` re-checks and
 * records the id, and is only called after the AEAD tag verified, so a forged packet can never
 * move the window.
 */

export const REPLAY_WINDOW_SIZE = 2048;
const WORD_BITS = 32;
const WORDS = REPLAY_WINDOW_SIZE / WORD_BITS;

export const enum ReplayVerdict {
  Ok = 0,
  /** Packet-id 0 is never sent by a conforming peer. */
  Zero = 1,
  Duplicate = 2,
  /** Older than the window can remember: cannot prove it is new, so it is refused. */
  TooOld = 3,
}

export class ReplayWindow {
  /** Highest id accepted so far (0 = none yet). */
  private top = 0;
  /** Bit (id % SIZE) is set when id, within [top - SIZE + 1, top], was seen. */
  private readonly bits = new Uint32Array(WORDS);

  get highest(): number {
    return this.top;
  }

  check(id: number): ReplayVerdict {
    if (id === 0) return ReplayVerdict.Zero;
    if (id > this.top) return ReplayVerdict.Ok;
    if (this.top - id >= REPLAY_WINDOW_SIZE) return ReplayVerdict.TooOld;
    return this.isSet(id) ? ReplayVerdict.Duplicate : ReplayVerdict.Ok;
  }

  /** Records `id` as seen. Returns the verdict of the check it repeats (Ok means recorded). */
  accept(id: number): ReplayVerdict {
    const verdict = this.check(id);
    if (verdict !== ReplayVerdict.Ok) return verdict;
    if (id > this.top) this.advance(id);
    this.set(id);
    return ReplayVerdict.Ok;
  }

  /** Clears the bits of the ids the window slides over on its way up to `id`. */
  private advance(id: number): void {
    const gap = id - this.top;
    if (gap >= REPLAY_WINDOW_SIZE) {
      this.bits.fill(0);
    } else {
      for (let seen = this.top + 1; seen < id; seen++) this.clear(seen);
    }
    this.top = id;
  }

  private isSet(id: number): boolean {
    const bit = id % REPLAY_WINDOW_SIZE;
    return (this.bits[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  private set(id: number): void {
    const bit = id % REPLAY_WINDOW_SIZE;
    this.bits[bit >>> 5]! |= 1 << (bit & 31);
  }

  private clear(id: number): void {
    const bit = id % REPLAY_WINDOW_SIZE;
    this.bits[bit >>> 5]! &= ~(1 << (bit & 31));
  }
}
