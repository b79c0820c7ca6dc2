/**
 * What the TUN and UDP edges share: a non-blocking fd owned by one object, watched by a libuv
 * poller on Node's event loop, closed exactly once.
 */
import { type NativePoller, native } from './native.js';

export abstract class PolledFd {
  private poller: NativePoller | undefined;

  protected constructor(
    private fd: number,
    /** Names the edge in errors, e.g. "tun tun0" or "udp bind". */
    private readonly label: string,
  ) {}

  get closed(): boolean {
    return this.fd < 0;
  }

  /**
   * Calls cb whenever the fd becomes readable (level-triggered: drain until a read returns 0,
   * or it fires again). status < 0 means the fd errored and watching has stopped; the next
   * read throws the actual errno. Replaces any previous callback.
   */
  onReadable(cb: (status: number) => void): { unref(): void; ref(): void } {
    this.poller?.stop();
    const p = native().poll(this.checkFd(), cb);
    this.poller = p;
    return { unref: () => p.unref(), ref: () => p.ref() };
  }

  /** Stops watching; the fd stays open. */
  stopReading(): void {
    this.poller?.stop();
    this.poller = undefined;
  }

  /** Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    // Stop the watcher before the fd number can be reused by someone else.
    this.stopReading();
    const fd = this.fd;
    this.fd = -1;
    native().close(fd);
  }

  protected checkFd(): number {
    if (this.fd < 0) throw Object.assign(new Error(`${this.label}: closed`), { code: 'EBADF' });
    return this.fd;
  }
}
