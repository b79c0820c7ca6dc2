/**
 * TUN edge: a layer-3 interface whose packets we read and write in batches.
 *
 * Lifetime: the device is created non-persistent, so it exists exactly as
 * long as our fd. Closing the fd, exiting, or being SIGKILLed removes the
 * interface, and a restarted daemon can always recreate the same name.
 *
 * When someone deletes the interface underneath us (`ip link del NAME`), the
 * kernel detaches our fd from the (now gone) device but keeps the fd open:
 *   - the fd polls as EPOLLERR, so the onReadable callback fires once with a
 *     negative status (libuv's UV_EBADF) and libuv stops watching it;
 *   - every read() and write() on it then fails with EBADFD ("File descriptor
 *     in bad state", errno 77), permanently;
 *   - linkGet(name) returns null.
 * `read()`/`write()` therefore throw a NativeError with code 'EBADFD', which
 * is the daemon's signal that the interface is gone and must be recreated.
 */
import type { PacketBatch } from '../core/batch.js';
import type { Tun } from './edges.js';
import { isNativeError, native } from './native.js';
import { PolledFd } from './polled-fd.js';

export class TunDevice extends PolledFd implements Tun {
  private constructor(
    fd: number,
    /** Interface name as the kernel assigned it (relevant when opened with a %d pattern). */
    readonly name: string,
    readonly ifindex: number,
    /**
     * TUN_F_* offloads the kernel accepted, or null when the device was opened without
     * IFF_VNET_HDR. When not null, every packet read or written starts with a 10-byte
     * virtio_net_hdr (see core/gso.ts), even with offloads 0.
     */
    readonly offloads: number | null,
    /** Why the offloads asked for were refused (the device then works without them). */
    readonly offloadError: string | null,
    /** The kernel takes UDP super-packets on write (it knows TUN_F_USO4/6); see core/gso.ts. */
    readonly usoWrite = false,
  ) {
    super(fd, `tun ${name}`);
  }

  /**
   * Create the interface. Throws a NativeError with code 'EBUSY' when a
   * device of that name already exists (ours from a live process, or any
   * other kind of link). With `offloads` (a TUN_F_* mask) the device is opened
   * with a virtio_net_hdr on every packet and those offloads; when the kernel
   * refuses, it is opened plainly instead and `offloadError` says why.
   */
  static open(name: string, offloads?: number): TunDevice {
    if (offloads !== undefined) {
      try {
        const t = native().tunOpen(name, offloads);
        return new TunDevice(t.fd, t.name, t.ifindex, offloads, null, t.usoWrite);
      } catch (error) {
        if (isNativeError(error, 'EBUSY') || !isNativeError(error)) throw error;
        const t = native().tunOpen(name);
        return new TunDevice(t.fd, t.name, t.ifindex, null, error.message);
      }
    }
    const t = native().tunOpen(name);
    return new TunDevice(t.fd, t.name, t.ifindex, null, null);
  }

  /** Length of the kernel's transmit queue (the TUN's ring of packets waiting for our reads). */
  get txqueuelen(): number {
    const l = native().linkGet(this.name);
    if (!l) throw Object.assign(new Error(`tun ${this.name}: interface is gone`), { code: 'ENODEV' });
    return l.txqueuelen;
  }

  set txqueuelen(txqueuelen: number) {
    native().linkSet(this.name, { txqueuelen });
  }

  get mtu(): number {
    const l = native().linkGet(this.name);
    if (!l) throw Object.assign(new Error(`tun ${this.name}: interface is gone`), { code: 'ENODEV' });
    return l.mtu;
  }

  set mtu(mtu: number) {
    native().linkSet(this.name, { mtu });
  }

  up(): void {
    native().linkSet(this.name, { up: true });
  }

  down(): void {
    native().linkSet(this.name, { up: false });
  }

  /** Whether the interface still exists (false after `ip link del` or close()). */
  exists(): boolean {
    return native().linkGet(this.name) !== null;
  }

  /**
   * Read up to `max` packets into batch (packet i at batch.offsets[i], which
   * the caller sets; sizes[i] is filled in). Sets and returns batch.count;
   * 0 means nothing pending. Throws NativeError 'EBADFD' once the interface
   * was deleted.
   */
  read(batch: PacketBatch, max: number = batch.bufs.length): number {
    const n = native().readBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, max);
    batch.count = n;
    return n;
  }

  /**
   * Write packets 0..batch.count-1. Returns how many were consumed from the
   * front: written, or dropped because the kernel rejected that one packet
   * (then sizes[i] is set to -errno, e.g. -EINVAL for a non-IP packet).
   * A return below count means the queue is full (EAGAIN): the caller drops
   * or retries the rest.
   */
  write(batch: PacketBatch): number {
    return native().writeBatch(this.checkFd(), batch.bufs, batch.offsets, batch.sizes, batch.count);
  }
}
