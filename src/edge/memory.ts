/**
 * In-memory edges, in the spirit of wireguard-go's tun/tuntest and conn/bindtest: hosts on one
 * simulated network, each with its own addresses, TUN devices, UDP sockets, routes and a shared
 * manual clock. Two interfaces joined this way run in one process without root, so the whole
 * data path (routing, float, multihome, keepalive, keys, replay) can be tested on its own.
 *
 * Datagrams are copied on send and delivered to the socket bound on the destination address's
 * host and port, with the endpoint slot the kernel would fill (source, local address reached).
 * Readiness is level-triggered, like a real fd: the callback runs (on a later turn of the event
 * loop) for as long as something is queued.
 */
import type { PacketBatch } from '../core/batch.js';
import { type Endpoint, readEndpoint, writeEndpoint } from '../core/endpoint.js';
import { parseSocketAddress, type SystemRoute } from '../core/ip.js';
import {
  type Clock,
  type DatagramBind,
  type Edges,
  type OnReadable,
  type OpenedTun,
  type RouteWatch,
  type Timer,
  TUN_GONE_CODE,
  type Tun,
  type TunConfig,
} from './edges.js';

interface ClockTimer {
  due: number;
  /** 0: once. */
  every: number;
  fn: () => void;
}

/** A clock that moves only when told: timers run inside advance(), in deadline order. */
export class ManualClock implements Clock {
  private time = 0;
  private readonly timers = new Set<ClockTimer>();

  now(): number {
    return this.time;
  }

  every(ms: number, fn: () => void): Timer {
    return this.add(ms, ms, fn);
  }

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, 0, fn);
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: ClockTimer | undefined;
      for (const timer of this.timers)
        if (timer.due <= end && (next === undefined || timer.due < next.due)) next = timer;
      if (next === undefined) break;
      this.time = next.due;
      if (next.every > 0) next.due += next.every;
      else this.timers.delete(next);
      next.fn();
    }
    this.time = end;
  }

  /** every 0: once. */
  private add(ms: number, every: number, fn: () => void): Timer {
    const timer = { due: this.time + ms, every, fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }
}

/** Level-triggered readiness for a queue: the callback runs on a later turn while items wait. */
class Readiness {
  private callback: OnReadable | null = null;
  private scheduled = false;

  constructor(private readonly hasWork: () => boolean) {}

  set(cb: OnReadable): void {
    this.callback = cb;
    this.poke();
  }

  clear(): void {
    this.callback = null;
  }

  poke(): void {
    if (this.scheduled || this.callback === null || !this.hasWork()) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.callback === null || !this.hasWork()) return;
      this.callback(0);
      this.poke();
    });
  }

  /** The fd went bad: the callback runs once with an error status and watching stops. */
  fail(): void {
    const cb = this.callback;
    this.callback = null;
    if (cb !== null) setImmediate(() => cb(-77));
  }
}

function copyIn(batch: PacketBatch, i: number, data: Uint8Array): void {
  batch.bufs[i]!.set(data, batch.offsets[i]!);
  batch.sizes[i] = data.length;
}

function copyOut(batch: PacketBatch, i: number): Buffer {
  const offset = batch.offsets[i]!;
  return Buffer.from(batch.bufs[i]!.subarray(offset, offset + batch.sizes[i]!));
}

/** Resolves with the next item pushed, or at once with one already there. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((item: T) => void)[] = [];

  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter === undefined) this.items.push(item);
    else waiter(item);
  }

  next(): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Everything received and not yet taken by next(). */
  drain(): T[] {
    return this.items.splice(0);
  }
}

/**
 * What the fake TUN and socket share, as PolledFd does for the real ones: a queue of what waits
 * to be read, level-triggered readiness on it, and a close that happens once.
 */
abstract class MemoryFd<T> {
  protected readonly queue: T[] = [];
  protected readonly readiness = new Readiness(() => this.queue.length > 0);
  private isClosed = false;
  /** An errno name every write (send) throws while set: an admin or the kernel in the way. */
  private failure: string | null = null;

  constructor(private readonly label: string) {}

  /**
   * From now on writes (sends) fail with `code`, as a TUN set down does ('EIO') or a socket whose
   * path's interface vanished ('ENODEV'); null: they work again.
   */
  failWrites(code: string | null): void {
    this.failure = code;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  onReadable(cb: OnReadable): void {
    this.readiness.set(cb);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.readiness.clear();
    this.released();
  }

  /** Queues what the other side sent, and wakes the reader. */
  protected arrive(item: T): void {
    if (this.isClosed) return;
    this.queue.push(item);
    this.readiness.poke();
  }

  protected checkOpen(): void {
    if (this.isClosed) throw Object.assign(new Error(`${this.label}: closed`), { code: 'EBADF' });
  }

  protected checkWritable(): void {
    this.checkOpen();
    if (this.failure !== null) throw Object.assign(new Error(`${this.label}: ${this.failure}`), { code: this.failure });
  }

  /** After close: the owner forgets this fd. */
  protected abstract released(): void;
}

export class MemoryTun extends MemoryFd<Buffer> implements Tun {
  readonly offloads = null;
  readonly usoWrite = false;
  /** Packets the interface wrote, i.e. what the kernel would deliver to local sockets. */
  readonly written = new Inbox<Buffer>();
  private gone = false;

  constructor(
    readonly name: string,
    readonly ifindex: number,
    readonly mtu: number,
    private readonly onClose: () => void,
  ) {
    super(`tun ${name}`);
  }

  /** A packet the kernel routed into the TUN: the interface reads it and sends it to a peer. */
  inject(packet: Uint8Array): void {
    if (!this.gone) this.arrive(Buffer.from(packet));
  }

  /** `ip link del`: from now on every read and write fails as on a deleted device. */
  remove(): void {
    this.gone = true;
    this.readiness.fail();
  }

  read(batch: PacketBatch, max = batch.bufs.length): number {
    this.check();
    let n = 0;
    for (; n < max && this.queue.length > 0; n++) copyIn(batch, n, this.queue.shift()!);
    batch.count = n;
    return n;
  }

  write(batch: PacketBatch): number {
    this.check();
    this.checkWritable();
    for (let i = 0; i < batch.count; i++) this.written.push(copyOut(batch, i));
    return batch.count;
  }

  protected released(): void {
    this.onClose();
  }

  private check(): void {
    if (this.gone) throw Object.assign(new Error(`tun ${this.name}: device is gone`), { code: TUN_GONE_CODE });
    this.checkOpen();
  }
}

interface Datagram {
  data: Buffer;
  /** Who sent it, and which of our addresses it reached. */
  from: Endpoint;
}

export class MemoryBind extends MemoryFd<Datagram> implements DatagramBind {
  /** The last read waiting in next(): the next one waits behind it. */
  private readers: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: MemoryHost,
    readonly port: number,
  ) {
    super(`udp port ${port}`);
  }

  recv(batch: PacketBatch, endpoints: Buffer, max = batch.bufs.length): number {
    this.checkOpen();
    let n = 0;
    for (; n < max && this.queue.length > 0; n++) {
      const datagram = this.queue.shift()!;
      copyIn(batch, n, datagram.data);
      writeEndpoint(endpoints, n, datagram.from);
    }
    batch.count = n;
    return n;
  }

  send(batch: PacketBatch, endpoints: Buffer): number {
    this.checkWritable();
    for (let i = 0; i < batch.count; i++) {
      if (batch.sizes[i]! < 0) continue;
      const to = readEndpoint(endpoints, i);
      if (to.local !== undefined && !this.host.addresses.includes(to.local)) {
        // As the shim does when the kernel refuses a pinned source that went away: forget it in
        // the caller's slot too, and let the host pick one.
        delete to.local;
        writeEndpoint(endpoints, i, { address: to.address, port: to.port });
      }
      this.host.network.deliver(this.host, this.port, to, copyOut(batch, i));
    }
    return batch.count;
  }

  /** Sends raw bytes, as a test's own socket would (junk, forgeries, control packets). */
  sendTo(data: Uint8Array, to: { address: string; port: number }, from?: string): void {
    this.checkOpen();
    const remote: Endpoint = { ...to, family: parseSocketAddress(to.address)?.family ?? 4, ifindex: 0 };
    if (from !== undefined) remote.local = from;
    this.host.network.deliver(this.host, this.port, remote, Buffer.from(data));
  }

  /**
   * The next datagram, for a test reading this socket itself (no onReadable callback set). Reads
   * may wait side by side: each gets its own datagram, in the order they were asked for.
   */
  async next(): Promise<Datagram> {
    // A turn in the queue, so a read is never overtaken by one asked for after it.
    const ticket = this.readers.then(async () => {
      while (this.queue.length === 0) await new Promise<void>((resolve) => this.readiness.set(() => resolve()));
      this.readiness.clear();
      return this.queue.shift()!;
    });
    this.readers = ticket.then(
      () => undefined,
      () => undefined,
    );
    return ticket;
  }

  /** Called by the network. */
  enqueue(datagram: Datagram): void {
    this.arrive(datagram);
  }

  protected released(): void {
    this.host.unbind(this);
  }
}

/** One machine on the network: its addresses, TUNs, sockets and routes. */
export class MemoryHost {
  readonly edges: Edges;
  private readonly tuns = new Map<string, MemoryTun>();
  private readonly binds = new Map<number, MemoryBind>();
  private readonly routeWatchers = new Map<string, Set<(routes: SystemRoute[]) => void>>();
  private readonly routes = new Map<string, SystemRoute[]>();

  constructor(
    readonly network: MemoryNetwork,
    readonly addresses: string[],
  ) {
    this.edges = {
      openTun: (config) => this.openTun(config),
      openUdp: (port) => this.openUdp(port),
      watchRoutes: (ifname, onChange) => this.watchRoutes(ifname, onChange),
      clock: network.clock,
    };
  }

  tun(name: string): MemoryTun {
    const tun = this.tuns.get(name);
    if (tun === undefined) throw new Error(`no TUN ${name} on this host`);
    return tun;
  }

  /** A UDP socket of this host, for a test to send and receive raw datagrams. */
  openUdp(port: number): MemoryBind {
    let chosen = port;
    if (chosen === 0) for (chosen = 40000; this.binds.has(chosen); chosen++);
    if (this.binds.has(chosen)) {
      throw Object.assign(new Error(`udp port ${chosen} is in use`), { code: 'EADDRINUSE' });
    }
    const bind = new MemoryBind(this, chosen);
    this.binds.set(chosen, bind);
    return bind;
  }

  bound(port: number): MemoryBind | undefined {
    return this.binds.get(port);
  }

  unbind(bind: MemoryBind): void {
    if (this.binds.get(bind.port) === bind) this.binds.delete(bind.port);
  }

  /** The kernel's routes through `ifname` changed to `routes` (as `ip route` would make them). */
  setRoutes(ifname: string, routes: SystemRoute[]): void {
    this.routes.set(ifname, routes);
    for (const watcher of this.routeWatchers.get(ifname) ?? []) watcher(routes);
  }

  /** Adds an address (multihome) or, with remove, takes one away. */
  setAddress(address: string, present: boolean): void {
    const at = this.addresses.indexOf(address);
    if (present && at < 0) this.addresses.push(address);
    if (!present && at >= 0) this.addresses.splice(at, 1);
  }

  /** The address this host sends from to reach `family`: the pinned one if it has it, else its first. */
  sourceAddress(family: 4 | 6, pinned?: string): string | undefined {
    if (pinned !== undefined && this.addresses.includes(pinned)) return pinned;
    return this.addresses.find((a) => parseSocketAddress(a)?.family === family);
  }

  private openTun(config: TunConfig): OpenedTun {
    if (this.tuns.has(config.name)) {
      throw Object.assign(new Error(`interface ${config.name} exists`), { code: 'EBUSY' });
    }
    const tun = new MemoryTun(config.name, this.network.nextIfindex(), config.mtu, () => this.tuns.delete(config.name));
    this.tuns.set(config.name, tun);
    return { tun, warnings: [] };
  }

  private watchRoutes(ifname: string, onChange: (routes: SystemRoute[]) => void): RouteWatch {
    const set = this.routeWatchers.get(ifname) ?? new Set();
    this.routeWatchers.set(ifname, set);
    set.add(onChange);
    // The list as it is when the first call runs, as the real watcher's first dump is: a change
    // made in between must not be overwritten by an older list.
    setImmediate(() => set.has(onChange) && onChange(this.routes.get(ifname) ?? []));
    return { close: () => set.delete(onChange) };
  }
}

export class MemoryNetwork {
  readonly clock = new ManualClock();
  private readonly hosts: MemoryHost[] = [];
  private ifindex = 1;
  /** Datagrams sent to an address or port where nobody listens. */
  lost = 0;

  host(...addresses: string[]): MemoryHost {
    const host = new MemoryHost(this, addresses);
    this.hosts.push(host);
    return host;
  }

  nextIfindex(): number {
    return this.ifindex++;
  }

  /** Carries a datagram from `from`'s port to `to`, filling in the endpoint the receiver sees. */
  deliver(from: MemoryHost, fromPort: number, to: Endpoint, data: Buffer): void {
    const source = from.sourceAddress(to.family, to.local);
    const host = this.hosts.find((h) => h.addresses.includes(to.address));
    const bind = host?.bound(to.port);
    if (source === undefined || bind === undefined) {
      this.lost++;
      return;
    }
    bind.enqueue({ data, from: { address: source, port: fromPort, family: to.family, local: to.address, ifindex: 1 } });
  }
}
