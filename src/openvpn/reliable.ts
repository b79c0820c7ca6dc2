/**
 * The control channel's reliability layer (OpenVPN's reliable.c, rebuilt): numbered messages go
 * out within a send window and are retransmitted with a doubling timeout until acked; received
 * messages are acked, duplicates dropped (but acked again, the first ack may have been lost), and
 * delivered strictly in order. Time comes from an injectable clock; the owner calls flush() when
 * it may send (after a send or receive, and on its timer).
 */

import { Opcode } from '../core/wire.js';
import type { Clock } from '../edge/edges.js';
import { type ControlOpcode, MAX_ACKS_PER_PACKET } from './packet.js';

/** OpenVPN's defaults: six messages in flight, twelve buffered out of order, tls-timeout 2 s. */
export const DEFAULT_SEND_WINDOW = 6;
export const DEFAULT_RECEIVE_WINDOW = 12;
export const DEFAULT_INITIAL_TIMEOUT_MS = 2000;
/** Acks per packet we send: the smaller array some servers insist on, OpenVPN 2.6 keeps to it too. */
export const ACKS_PER_PACKET = 4;

export interface ReliableOptions {
  clock: Clock;
  sendWindow?: number;
  receiveWindow?: number;
  initialTimeoutMs?: number;
  /** Called once per message, in order. */
  deliver(opcode: ControlOpcode, payload: Buffer, messageId: number): void;
}

/** A packet to send, without its header: the session adds opcode byte and session ids. */
export interface OutgoingFrame {
  opcode: ControlOpcode;
  acks: number[];
  messageId?: number;
  payload: Buffer;
}

interface InFlight {
  id: number;
  opcode: ControlOpcode;
  payload: Buffer;
  /** 0 until first sent. */
  sentAt: number;
  nextTry: number;
  timeout: number;
  sends: number;
}

export interface ReliableStats {
  sent: number;
  retransmits: number;
  received: number;
  duplicates: number;
  outOfWindow: number;
}

export class ReliableLink {
  private nextSendId = 0;
  private readonly inFlight: InFlight[] = [];
  private nextReceiveId = 0;
  private readonly early = new Map<number, { opcode: ControlOpcode; payload: Buffer }>();
  private pendingAcks: number[] = [];
  private readonly sendWindow: number;
  private readonly receiveWindow: number;
  private readonly initialTimeout: number;
  readonly stats: ReliableStats = { sent: 0, retransmits: 0, received: 0, duplicates: 0, outOfWindow: 0 };

  constructor(private readonly options: ReliableOptions) {
    this.sendWindow = options.sendWindow ?? DEFAULT_SEND_WINDOW;
    this.receiveWindow = options.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.initialTimeout = options.initialTimeoutMs ?? DEFAULT_INITIAL_TIMEOUT_MS;
  }

  /** Queues a message; it leaves with the next flush() that has room in the window. */
  send(opcode: ControlOpcode, payload: Buffer): number {
    if (opcode === Opcode.ACK_V1) throw new RangeError('acks are not reliable messages');
    const id = this.nextSendId++;
    this.inFlight.push({ id, opcode, payload, sentAt: 0, nextTry: 0, timeout: this.initialTimeout, sends: 0 });
    return id;
  }

  /** Takes the acks of a received packet: those messages need no more retransmission. */
  acked(ids: readonly number[]): void {
    for (const id of ids) {
      const at = this.inFlight.findIndex((m) => m.id === id);
      if (at >= 0) this.inFlight.splice(at, 1);
    }
  }

  /** A received message: ack it, and deliver it and whatever it unblocks, in order. */
  receive(opcode: ControlOpcode, messageId: number, payload: Buffer): void {
    if (messageId < this.nextReceiveId) {
      this.stats.duplicates++;
      this.ack(messageId);
      return;
    }
    if (messageId >= this.nextReceiveId + this.receiveWindow) {
      // No room to keep it: not acking makes the peer send it again later.
      this.stats.outOfWindow++;
      return;
    }
    this.ack(messageId);
    if (this.early.has(messageId)) {
      this.stats.duplicates++;
      return;
    }
    this.early.set(messageId, { opcode, payload });
    for (;;) {
      const next = this.early.get(this.nextReceiveId);
      if (next === undefined) break;
      this.early.delete(this.nextReceiveId);
      this.stats.received++;
      this.options.deliver(next.opcode, next.payload, this.nextReceiveId++);
    }
  }

  /** Every message queued has been acked. */
  idle(): boolean {
    return this.inFlight.length === 0;
  }

  /** Acks still owed to the peer. */
  owesAcks(): boolean {
    return this.pendingAcks.length > 0;
  }

  /**
   * What to send now: due messages of the window (first sends and retransmissions), each with
   * the acks owed, then bare acks for whatever is still owed.
   */
  flush(): OutgoingFrame[] {
    const now = this.options.clock.now();
    const out: OutgoingFrame[] = [];
    for (const m of this.inFlight.slice(0, this.sendWindow)) {
      if (m.sends > 0 && m.nextTry > now) continue;
      if (m.sends > 0) {
        this.stats.retransmits++;
        m.timeout *= 2;
      }
      m.sends++;
      this.stats.sent++;
      m.nextTry = now + m.timeout;
      out.push({ opcode: m.opcode, acks: this.takeAcks(), messageId: m.id, payload: m.payload });
    }
    while (this.pendingAcks.length > 0)
      out.push({ opcode: Opcode.ACK_V1, acks: this.takeAcks(), payload: Buffer.alloc(0) });
    return out;
  }

  /** When the next retransmission falls due (ms on the clock), or undefined when none waits. */
  nextDue(): number | undefined {
    let due: number | undefined;
    for (const m of this.inFlight.slice(0, this.sendWindow)) if (due === undefined || m.nextTry < due) due = m.nextTry;
    return due;
  }

  private ack(id: number): void {
    if (!this.pendingAcks.includes(id)) this.pendingAcks.push(id);
  }

  private takeAcks(): number[] {
    return this.pendingAcks.splice(0, Math.min(ACKS_PER_PACKET, MAX_ACKS_PER_PACKET));
  }
}
