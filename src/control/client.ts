/**
 * The client side of the control socket (used by ovpn-cli, tests and embedders who run the
 * interface out of process), and the launcher that starts an interface's daemon.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { controlDir, logPath, socketPath } from './paths.js';
import { type Command, LineSplitter, type Notification, PROTOCOL_VERSION, type Response } from './protocol.js';

export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

type Pending = { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void };

export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private listener: ((notification: Notification) => void) | null = null;
  private closedError: Error | null = null;

  private constructor(
    readonly ifname: string,
    private readonly socket: Socket,
  ) {
    const splitter = new LineSplitter();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      for (const line of splitter.push(chunk)) this.dispatch(JSON.parse(line) as Response | Notification);
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () =>
      this.fail(new ControlError('ECONNRESET', `daemon of ${ifname} closed the control connection`)),
    );
  }

  /** Connects to the daemon of `ifname` and checks that it speaks our protocol version. */
  static async connect(ifname: string): Promise<ControlClient> {
    const client = await ControlClient.open(ifname);
    try {
      await client.hello();
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /**
   * The first request on every connection. A daemon of another version refuses it (EPROTO); one
   * from before versions existed does not know the command. Either way the message names both
   * sides and the fix, rather than letting a later request fail in some odd way.
   */
  private async hello(): Promise<void> {
    const fix =
      `use the ovpn-cli of the installation that started the daemon, or re-create the interface with this one ` +
      `(ovpn-cli del_iface ${this.ifname})`;
    try {
      await this.request('hello', { version: PROTOCOL_VERSION });
    } catch (error) {
      if (!(error instanceof ControlError)) throw error;
      if (error.code === 'EPROTO') throw new ControlError('EPROTO', `${error.message}: ${fix}`, 'version');
      if (error.code === 'EINVAL' && error.field === 'cmd') {
        throw new ControlError(
          'EPROTO',
          `the daemon of ${this.ifname} predates control protocol versions, this client speaks version ` +
            `${PROTOCOL_VERSION}: ${fix}`,
          'version',
        );
      }
      throw error;
    }
  }

  private static open(ifname: string): Promise<ControlClient> {
    const path = socketPath(ifname);
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new ControlClient(ifname, socket)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
          reject(
            new ControlError(
              'ENODEV',
              `interface ${ifname} does not exist in this network namespace (create it with new_iface)`,
              'ifname',
            ),
          );
        } else if (error.code === 'EACCES') {
          reject(new ControlError('EPERM', `permission denied on ${path}: the control socket is for root only`));
        } else reject(error);
      });
    });
  }

  /** Sends one command and resolves with the reply's attributes, or rejects with ControlError. */
  request(cmd: Command, body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const id = this.nextId++;
    this.socket.write(`${JSON.stringify({ id, cmd, ...body })}\n`);
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** Subscribes to the interface's notifications; `listener` gets each one. */
  async subscribe(listener: (notification: Notification) => void): Promise<void> {
    this.listener = listener;
    await this.request('subscribe');
  }

  /** Resolves when the daemon closes the connection (e.g. the interface went away). */
  closed(): Promise<void> {
    return new Promise((resolve) => (this.socket.closed ? resolve() : this.socket.once('close', () => resolve())));
  }

  close(): void {
    this.socket.end();
  }

  /** `await using client = await ControlClient.connect(...)`: closed when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private dispatch(message: Response | Notification): void {
    if ('ntf' in message) {
      this.listener?.(message as Notification);
      return;
    }
    const reply = message as Response;
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply);
    else pending.reject(new ControlError(reply.error.code, reply.error.message, reply.error.field));
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/** Names of the interfaces whose daemons run in this network namespace. */
export function listInterfaces(): string[] {
  const dir = controlDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.sock'))
    .map((name) => name.slice(0, -'.sock'.length));
}

const DAEMON = fileURLToPath(new URL('../daemon/main.js', import.meta.url));

/**
 * V8's young generation capped at 2 MB semi-spaces (default 16): under a flood of control
 * packets it otherwise grows once by ~25 MB of RSS that it keeps, and the data path allocates
 * too little for the smaller one to cost throughput (bench/results/hostile.md). The programs'
 * shebangs (daemon/main.ts, cli/ovpn-dco.ts) pass the same flag when run directly.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Starts the daemon that owns interface `ifname` and waits until its control socket answers.
 * The daemon is detached: it outlives this process, like a kernel interface would.
 */
export function startDaemon(ifname: string, mode: 'P2P' | 'MP', mtu?: number): Promise<void> {
  const path = logPath(ifname);
  const log = openSync(path, 'a', 0o600);
  // Node/V8 flags for the daemon only (e.g. --cpu-prof, GC settings), space-separated: the
  // daemon is started here, so NODE_OPTIONS (which refuses many of them) is not the only way in.
  // Given after ours, they win.
  const nodeFlags = (process.env.OVPN_DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const args = [
    ...DAEMON_NODE_FLAGS,
    ...nodeFlags,
    DAEMON,
    '--ifname',
    ifname,
    '--mode',
    mode,
    ...(mtu === undefined ? [] : ['--mtu', String(mtu)]),
  ];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', log] });
  closeSync(log);
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready\n')) {
        child.stdout!.destroy();
        child.unref();
        resolve();
      }
    });
    child.once('exit', (code) => {
      // A daemon that failed before writing a word leaves no empty log behind.
      if (statSync(path, { throwIfNoEntry: false })?.size === 0) rmSync(path, { force: true });
      const reason = output.trim() || `daemon exited with code ${String(code)}; see ${path}`;
      reject(new ControlError(code === 3 ? 'EEXIST' : 'EIO', reason, 'ifname'));
    });
  });
}
