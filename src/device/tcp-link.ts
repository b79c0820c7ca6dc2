/**
 * One peer's TCP connection (OpenVPN over TCP): packets in, packets out, and one notice when the
 * connection is gone. Mirrors what the Linux ovpn module does with a TCP socket it is given:
 * a bad length on the stream ends the peer with TRANSPORT_ERROR; the peer closing or resetting
 * the connection ends it with TRANSPORT_DISCONNECT.
 */
import net from 'node:net';
import { MAX_PACKET, newBatch, type PacketBatch } from '../core/batch.js';
import { ENDPOINT_SIZE, type Endpoint, readEndpoint, writeEndpoint } from '../core/endpoint.js';
import { framedLength, frameRange, isFramable, StreamDeframer } from '../core/tcp-framing.js';

export type TcpCloseReason = 'TRANSPORT_DISCONNECT' | 'TRANSPORT_ERROR';

/** send() refuses packets while more than this many bytes wait in the socket's send queue. */
export const TCP_SEND_QUEUE_LIMIT = 4 * 1024 * 1024;
/** Framing buffers kept for reuse (by all links) once their writes complete; more are let go. */
const SPARE_FRAME_BUFFERS = 8;
/** Smallest framing buffer: one full batch of 1500-byte packets fits. */
const MIN_FRAME_BUFFER = 256 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Framing buffers free to overwrite. A buffer comes back here only from its write's callback,
 * when neither Node's stream queue nor libuv holds it any more, and only while its socket is
 * alive: after a destroy the callbacks may come out of order, so those buffers are left to GC.
 */
const spareFrames: Buffer[] = [];

/**
 * The batch every link delivers into. One is enough for the process: a link fills it and hands
 * it to onPackets synchronously, and no link reads while another one's onPackets runs.
 */
let sharedRxBatch: PacketBatch | null = null;

export class TcpLink {
  /** Remote address/port of the connection, local = the address it arrived on. */
  readonly remote: Endpoint;
  /** The same in one 48-byte endpoint slot, as the UDP edge reports a datagram's path. */
  readonly endpoint: Buffer;
  /** Packets read from the stream; the batch is reused and valid only during the call. */
  onPackets: (batch: PacketBatch) => void = () => {};
  /** The connection is gone; called at most once, and never after close(). */
  onClose: (reason: TcpCloseReason, detail: string) => void = () => {};

  private readonly deframer: StreamDeframer;
  private open = true;
  /** What the socket reported before 'close', for the detail of the notice. */
  private lastError: Error | null = null;
  /** Framing buffers handed to socket.write, oldest first: a live socket completes writes in order. */
  private readonly inFlight: Buffer[] = [];
  private readonly written = (): void => {
    const buf = this.inFlight.shift();
    if (buf !== undefined && !this.socket.destroyed && spareFrames.length < SPARE_FRAME_BUFFERS) spareFrames.push(buf);
  };

  /** Takes over a connected socket. maxPacket bounds the lengths accepted from the stream. */
  constructor(
    private readonly socket: net.Socket,
    maxPacket = MAX_PACKET,
  ) {
    if (socket.remoteAddress === undefined || socket.remotePort === undefined) {
      throw new Error('TcpLink needs a connected socket (remoteAddress is undefined)');
    }
    this.deframer = new StreamDeframer(maxPacket);
    this.endpoint = Buffer.alloc(ENDPOINT_SIZE);
    const init = { address: socket.remoteAddress, port: socket.remotePort };
    writeEndpoint(this.endpoint, 0, socket.localAddress === undefined ? init : { ...init, local: socket.localAddress });
    this.remote = readEndpoint(this.endpoint, 0);
    // Packets are already batched: Nagle would only delay the last one of each batch.
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.finish('TRANSPORT_DISCONNECT', 'peer closed the connection'));
    socket.on('error', (err: Error) => {
      this.lastError = err;
    });
    socket.on('close', () => this.finish('TRANSPORT_DISCONNECT', this.closeDetail()));
  }

  /** Connects to a peer; rejects with the address and the system's reason (ECONNREFUSED, …). */
  static connect(
    remote: { address: string; port: number },
    timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
    maxPacket = MAX_PACKET,
  ): Promise<TcpLink> {
    const where = `${remote.address} port ${remote.port}`;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: remote.address, port: remote.port });
      const fail = (why: string, code: string | undefined): void => {
        socket.destroy();
        reject(Object.assign(new Error(`TCP connect to ${where} failed: ${why}`), { code }));
      };
      socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT'));
      socket.once('error', (err: NodeJS.ErrnoException) => fail(err.message, err.code));
      socket.once('connect', () => {
        socket.setTimeout(0);
        socket.removeAllListeners('error');
        socket.removeAllListeners('timeout');
        resolve(new TcpLink(socket, maxPacket));
      });
    });
  }

  /** True until the connection is closed, by either side. */
  get isOpen(): boolean {
    return this.open;
  }

  /** Bytes waiting in the socket's send queue. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Writes packets start..end-1 of a batch to the stream, all in one socket write. Returns how
   * many were accepted: 0 when the link is closed or its send queue is over
   * TCP_SEND_QUEUE_LIMIT (the peer does not read fast enough: dropping beats buffering without
   * bound), else the packets that can be framed (never DROPPED ones).
   */
  send(batch: PacketBatch, start: number, end: number): number {
    if (!this.open || this.socket.destroyed || this.socket.writableLength > TCP_SEND_QUEUE_LIMIT) return 0;
    const size = framedLength(batch, start, end);
    if (size === 0) return 0;
    let buf = spareFrames.pop();
    if (buf === undefined || buf.length < size) buf = Buffer.allocUnsafeSlow(Math.max(size, MIN_FRAME_BUFFER));
    const framed = frameRange(batch, start, end, buf);
    this.inFlight.push(buf);
    this.socket.write(framed, this.written);
    let accepted = 0;
    for (let i = start; i < end; i++) if (isFramable(batch.sizes[i]!)) accepted++;
    return accepted;
  }

  /** Closes the connection without an onClose notice: the caller already knows. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (!this.open) return;
    const sound = this.deframer.push(chunk);
    // Packets that arrived before a bad length are good: deliver them first, as the module does.
    sharedRxBatch ??= newBatch();
    const batch = sharedRxBatch;
    while (this.open) {
      batch.count = 0;
      if (this.deframer.drain(batch) === 0) break;
      this.onPackets(batch);
    }
    if (!sound) {
      this.socket.destroy();
      this.finish('TRANSPORT_ERROR', `invalid packet length ${this.deframer.invalidLength}`);
    }
  }

  private finish(reason: TcpCloseReason, detail: string): void {
    if (!this.open) return;
    this.open = false;
    this.socket.destroy();
    this.onClose(reason, detail);
  }

  private closeDetail(): string {
    const err = this.lastError as NodeJS.ErrnoException | null;
    if (err === null) return 'connection closed';
    if (err.code === 'ECONNRESET') return 'connection reset by peer (ECONNRESET)';
    return err.message;
  }
}

export class TcpListener {
  /** A link for every accepted connection; it is the callee's to keep or close. */
  onConnection: (link: TcpLink) => void = (link) => link.close();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly address: string,
    private readonly maxPacket: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
    // Accept errors (e.g. EMFILE) are transient for a listener: keep listening.
    server.on('error', () => {});
  }

  /**
   * Listens on every address: '::' dual-stack (IPv4 arrives as IPv4-mapped and is reported as
   * IPv4), or 0.0.0.0 where IPv6 is unavailable. Port 0 picks a free port (see `port`).
   */
  static async open(port: number, maxPacket = MAX_PACKET): Promise<TcpListener> {
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new RangeError(`TCP listen port must be 0 to 65535, got ${port}`);
    try {
      return await TcpListener.listen(port, '::', maxPacket);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      return TcpListener.listen(port, '0.0.0.0', maxPacket);
    }
  }

  private static listen(port: number, host: string, maxPacket: number): Promise<TcpListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', (err: NodeJS.ErrnoException) => {
        const wrapped = new Error(
          `cannot listen on TCP port ${port} (${host}): ${err.message}`,
        ) as NodeJS.ErrnoException;
        if (err.code !== undefined) wrapped.code = err.code;
        reject(wrapped);
      });
      server.listen({ port, host, ipv6Only: false }, () => {
        server.removeAllListeners('error');
        resolve(new TcpListener(server, (server.address() as net.AddressInfo).port, host, maxPacket));
      });
    });
  }

  /** Stops accepting; links already handed out stay open. */
  close(): void {
    this.server.close();
  }

  private accept(socket: net.Socket): void {
    // A connection reset before we see it has no address: nothing to hand out.
    if (socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    this.onConnection(new TcpLink(socket, this.maxPacket));
  }
}
