/**
 * One local UDP port of an interface: its socket, the batch and endpoint slots it receives into
 * (reused for every batch).
 */
import { newBatch, type PacketBatch, resetOffsets } from '../core/batch.js';
import { newEndpoints } from '../core/endpoint.js';
import type { DatagramBind } from '../edge/edges.js';

export class UdpPort {
  readonly rxBatch: PacketBatch;
  readonly rxEndpoints: Buffer;

  constructor(
    readonly bind: DatagramBind,
    batchSize: number,
  ) {
    this.rxBatch = newBatch(batchSize);
    this.rxEndpoints = newEndpoints(batchSize);
  }

  get port(): number {
    return this.bind.port;
  }

  get closed(): boolean {
    return this.bind.closed;
  }

  /** Receives one batch; returns packets received (0 when drained). */
  receive(): number {
    resetOffsets(this.rxBatch);
    return this.bind.recv(this.rxBatch, this.rxEndpoints);
  }

  /** Datagrams per receive. A receive that fills it may have left more where the poller cannot see. */
  get capacity(): number {
    return this.rxBatch.bufs.length;
  }

  close(): void {
    this.bind.close();
  }
}
