/**
 * A control-socket connection by path (the daemon's socket in another network namespace is
 * reachable from here through /run/ovpn-dco/netns-<inode>/), that can also write raw lines:
 * the fuzzers send requests the typed ControlClient would never build.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** A reply or notification: JSON in the shapes of docs/CONTROL.md, read here by attribute name. */
export type Reply = {
  id?: number;
  ok?: boolean;
  error?: { code: string; message: string; field?: string };
  // biome-ignore lint/suspicious/noExplicitAny: the harness reads the documented attributes without a decoder
} & Record<string, any>;

export class ControlLine {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private readonly lineWaiters: ((reply: Reply) => void)[] = [];
  private rest = '';
  /** Notifications seen, by name. */
  readonly ntfs = new Map<string, number>();
  /** The latest notifications other than packet-ntf, for reports. */
  readonly events: Reply[] = [];
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const parts = (this.rest + chunk).split('\n');
      this.rest = parts.pop() ?? '';
      for (const line of parts) if (line !== '') this.dispatch(JSON.parse(line) as Reply);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      const down: Reply = { ok: false, error: { code: 'ECONNRESET', message: 'control connection closed' } };
      for (const wake of this.waiting.values()) wake(down);
      this.waiting.clear();
      for (const wake of this.lineWaiters.splice(0)) wake(down);
    });
  }

  static async open(path: string): Promise<ControlLine> {
    const socket = connect(path);
    await once(socket, 'connect');
    return new ControlLine(socket);
  }

  /** A request with a fresh id; resolves with the reply (ok or not). */
  request(cmd: string, body: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.socket.write(`${JSON.stringify({ id, cmd, ...body })}\n`);
    });
  }

  /** Like request, but throws on an error reply. */
  async ok(cmd: string, body: Record<string, unknown> = {}): Promise<Reply> {
    const reply = await this.request(cmd, body);
    if (reply.ok !== true) throw new Error(`${cmd} ${JSON.stringify(body)}: ${JSON.stringify(reply.error)}`);
    return reply;
  }

  /** Writes one raw line and resolves with the next reply, whatever its id. */
  raw(line: string): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.closed) resolve({ ok: false, error: { code: 'ECONNRESET', message: 'closed' } });
      this.lineWaiters.push(resolve);
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private dispatch(message: Reply): void {
    if (typeof message.ntf === 'string') {
      this.ntfs.set(message.ntf, (this.ntfs.get(message.ntf) ?? 0) + 1);
      if (message.ntf !== 'packet-ntf') this.events.push(message);
      if (this.events.length > 50) this.events.shift();
      return;
    }
    const byId = typeof message.id === 'number' ? this.waiting.get(message.id) : undefined;
    if (byId !== undefined) {
      this.waiting.delete(message.id!);
      byId(message);
      return;
    }
    this.lineWaiters.shift()?.(message);
  }
}
