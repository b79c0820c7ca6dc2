/**
 * Transmit packet-ids. The 32-bit id is the first third of the AEAD nonce, so reusing one under
 * the same key would break GCM and ChaCha20-Poly1305 outright: the counter starts at 1, never
 * wraps, and asks for a new key well before it runs out.
 */

export const PACKET_ID_MAX = 0xffffffff;
/**
 * Past this id the key reports once that a swap is needed, leaving 2^28 packets for the control
 * plane to renegotiate. (The upstream kernel module only notifies once the space is gone and
 * the key is dead; warning early avoids that outage.)
 */
export const PACKET_ID_WRAP_WARN = 0xf0000000;

export class PacketIdSender {
  private next: number;

  constructor(first = 1) {
    this.next = first;
  }

  /** The id for the next packet, or -1 once the space is exhausted (caller must not seal). */
  take(): number {
    const id = this.next;
    if (id > PACKET_ID_MAX) return -1;
    this.next = id + 1;
    return id;
  }

  /** True once the ids in use have crossed the warning threshold. */
  get nearWrap(): boolean {
    return this.next > PACKET_ID_WRAP_WARN;
  }

  get exhausted(): boolean {
    return this.next > PACKET_ID_MAX;
  }

  /** Last id handed out (0 before the first packet). */
  get last(): number {
    return this.next - 1;
  }
}
