/**
 * One UDP port of an interface: the socket, its reusable receive batch and endpoint slots, and
 * how many peers use it. Peers on the same local port share the socket, as MP peers do.
 */
import { MAX_BATCH, newBatch, type PacketBatch, resetOffsets } from '../core/batch.js';
import { newEndpoints, UdpBind } from '../edge/udp.js';
import { DATA_PATH_BATCH } from './data-path.js';

export class UdpSocket {
  readonly rxBatch: PacketBatch = newBatch(DATA_PATH_BATCH);
  readonly rxEndpoints: Buffer = newEndpoints(MAX_BATCH);
  users = 0;

  private constructor(readonly bind: UdpBind) {}

  /**
   * Binds the wildcard address on `port`, dual-stack when the kernel has IPv6, so that one
   * socket serves IPv4 and IPv6 peers alike.
   */
  static open(port: number): UdpSocket {
    let bind: UdpBind;
    try {
      bind = UdpBind.open({ family: 6, address: '::', port });
    } catch (error) {
      if ((error as { code?: string }).code !== 'EAFNOSUPPORT') throw error;
      bind = UdpBind.open({ family: 4, address: '0.0.0.0', port });
    }
    return new UdpSocket(bind);
  }

  get port(): number {
    return this.bind.port;
  }

  /** Receives one batch; returns packets received (0 when drained). */
  receive(): number {
    resetOffsets(this.rxBatch);
    return this.bind.recv(this.rxBatch, this.rxEndpoints);
  }

  close(): void {
    this.bind.close();
  }
}
