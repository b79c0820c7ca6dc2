/**
 * UDP edge: one socket read and written with recvmmsg/sendmmsg, each packet with its endpoint
 * slot (core/endpoint.ts) instead of a JS address object. Sending with a slot whose local
 * address is set pins the source address (sticky source); if that address no longer exists the
 * packet is sent with a kernel-chosen source and the slot's local part is cleared.
 */
import type { PacketBatch } from '../core/batch.js';
import type { DatagramBind } from './edges.js';
import { envInteger, envSwitch } from './env.js';
import { native, type UdpOffloadInfo } from './native.js';
import { PolledFd } from './polled-fd.js';

export interface UdpBindOptions {
  family: 4 | 6;
  /** "" or "0.0.0.0" / "::" for any; "::" is dual-stack. */
  address: string;
  /** 0 for an ephemeral port. */
  port: number;
  /**
   * UDP GSO on send / GRO on receive, when the kernel has them. Default on; the environment
   * variables OVPN_UDP_GSO=0 and OVPN_UDP_GRO=0 turn them off for every socket (to compare).
   */
  gso?: boolean;
  gro?: boolean;
  /**
   * Socket receive / send buffer in bytes (0: the kernel's default). The receive buffer is
   * the queue a TCP flow inside the tunnel fills when we are the slower stage: no loss until it
   * is full, so every byte of it is delay for everything else (docs/ARCHITECTURE.md). Default OVPN_UDP_RCVBUF / OVPN_UDP_SNDBUF, else DEFAULT_RCVBUF/SNDBUF.
   */
  rcvbuf?: number;
  sndbuf?: number;
}

/** Room for a couple of 128-datagram bursts, little more (see UdpBindOptions.rcvbuf). */
export const DEFAULT_RCVBUF = 256 * 1024;
/** Sends go straight to the device: a large send buffer only holds a full batch in flight. */
export const DEFAULT_SNDBUF = 1024 * 1024;

export class UdpBind extends PolledFd implements DatagramBind {
  private constructor(
    fd: number,
    readonly family: 4 | 6,
    readonly address: string,
    readonly port: number,
    /** Whether sends use UDP GSO and receives UDP GRO (wanted and accepted by the kernel). */
    readonly gso: boolean,
    readonly gro: boolean,
  ) {
    super(fd, 'udp bind');
  }

  static open(opts: UdpBindOptions): UdpBind {
    const gso = opts.gso ?? envSwitch('OVPN_UDP_GSO', true);
    const gro = opts.gro ?? envSwitch('OVPN_UDP_GRO', true);
    const rcvbuf = opts.rcvbuf ?? envInteger('OVPN_UDP_RCVBUF', DEFAULT_RCVBUF);
    const sndbuf = opts.sndbuf ?? envInteger('OVPN_UDP_SNDBUF', DEFAULT_SNDBUF);
    const s = native().udpOpen(opts.family, opts.address, opts.port, { gso, gro, rcvbuf, sndbuf });
    return new UdpBind(s.fd, opts.family, opts.address, s.port, s.gso, s.gro);
  }

  /** Offload state and counters (GSO may have been turned off since open, see UdpOffloadInfo). */
  offloads(): UdpOffloadInfo {
    return native().udpInfo(this.checkFd());
  }

  /**
   * Receive up to batch.bufs.length datagrams: packet i at batch.offsets[i],
   * its length in sizes[i] (-1 if truncated: drop it), its endpoints in slot i.
   * Sets and returns batch.count; 0 means nothing pending.
   *
   * With GRO one datagram from the kernel can hold many packets; those that did not fit wait
   * inside the shim, invisible to the poller. They only exist after a call that filled all
   * `max` slots, so: after a full batch, call again before waiting for readability.
   */
  recv(batch: PacketBatch, endpoints: Buffer, max: number = batch.bufs.length): number {
    const n = native().udpRecvBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, endpoints, max);
    batch.count = n;
    return n;
  }

  /**
   * Send packets 0..batch.count-1, packet i to endpoint slot i. Returns how
   * many were consumed from the front: sent, or dropped for a reason specific
   * to that packet (then sizes[i] = -errno, e.g. -ENETUNREACH). A return below
   * count means the socket buffer is full (EAGAIN/ENOBUFS).
   *
   * With GSO, runs of packets for the same slot and of the same size (the last may be
   * shorter) go out as one message that the kernel segments; this changes nothing here.
   */
  send(batch: PacketBatch, endpoints: Buffer): number {
    return native().udpSendBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, endpoints, batch.count);
  }
}
