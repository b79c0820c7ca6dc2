/**
 * The byte stream node:tls runs over: what TLS writes goes to the reliability layer in chunks
 * that fit a control packet, and the payloads the reliability layer delivers in order are pushed
 * back as what TLS reads. No TLS is written by hand: node:tls does all of it.
 */
import { Duplex } from 'node:stream';

/** TLS bytes per P_CONTROL_V1: keeps each packet under OpenVPN's default control-channel MTU. */
export const CONTROL_PAYLOAD_MAX = 1100;

export class ControlStream extends Duplex {
  constructor(private readonly toPeer: (chunk: Buffer) => void) {
    super();
  }

  /** Ciphertext received from the peer, in order. */
  fromPeer(chunk: Buffer): void {
    this.push(chunk);
  }

  override _read(): void {
    // Pushed as packets arrive; TLS reading slower than the peer sends is absorbed by the buffer.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    for (let at = 0; at < chunk.length; at += CONTROL_PAYLOAD_MAX)
      this.toPeer(chunk.subarray(at, Math.min(chunk.length, at + CONTROL_PAYLOAD_MAX)));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }

  /** The session ends: the TLS socket sees the end of its stream. */
  close(): void {
    this.push(null);
  }
}
