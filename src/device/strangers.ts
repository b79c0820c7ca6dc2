/**
 * Packets that anyone can send without a key: control packets (handed up to the control plane)
 * and whatever arrives on a TCP connection that no peer has. They are counted (iface-get's
 * `unauthenticated`), and while packets from addresses or connections no peer has keep coming
 * the operator is told at most once a minute how many came, so that a flood leaves a trace in
 * the log without the log becoming the flood.
 */
import type { Clock } from '../edge/edges.js';

/** Between two summaries in the log. */
const REPORT_EVERY_MS = 60_000;

export interface StrangerCounts {
  /** Control packets read from the sockets (every sender: not authenticated here). */
  controlPackets: number;
  /** Of those, from an address or connection no peer has. */
  fromUnknown: number;
  /** Packets on TCP connections no peer has (control packets among them). */
  unassignedTcp: number;
}

export class Strangers {
  private readonly counts: StrangerCounts = { controlPackets: 0, fromUnknown: 0, unassignedTcp: 0 };
  private readonly told: StrangerCounts = { controlPackets: 0, fromUnknown: 0, unassignedTcp: 0 };
  private toldAt = Number.NEGATIVE_INFINITY;
  private scheduled = false;

  constructor(
    private readonly clock: Clock,
    private readonly report: (message: string) => void,
  ) {}

  get info(): StrangerCounts {
    return { ...this.counts };
  }

  control(peerId: number | null): void {
    this.counts.controlPackets++;
    if (peerId === null) this.counts.fromUnknown++;
    this.soon();
  }

  unassignedTcp(packets: number): void {
    this.counts.unassignedTcp += packets;
    this.soon();
  }

  /** After the batch at hand: one summary says what the whole batch brought. */
  private soon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.maybeReport();
    });
  }

  private maybeReport(): void {
    const now = this.clock.now();
    if (now - this.toldAt < REPORT_EVERY_MS) return;
    // Control packets from peers' own addresses are the control plane at work (renegotiations):
    // only strangers are worth the operator's attention.
    if (this.counts.fromUnknown === this.told.fromUnknown && this.counts.unassignedTcp === this.told.unassignedTcp)
      return;
    const since =
      this.toldAt === Number.NEGATIVE_INFINITY
        ? 'since start'
        : `in the last ${Math.round((now - this.toldAt) / 1000)} s`;
    const c = this.counts;
    const t = this.told;
    this.report(
      `${c.controlPackets - t.controlPackets} control packets ${since} (${c.fromUnknown - t.fromUnknown} from ` +
        `addresses no peer has), ${c.unassignedTcp - t.unassignedTcp} packets on TCP connections no peer has: ` +
        'anyone can send these; iface-get counts them under unauthenticated',
    );
    Object.assign(this.told, c);
    this.toldAt = now;
  }
}
