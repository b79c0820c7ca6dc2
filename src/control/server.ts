/**
 * The daemon's side of the control socket: decodes requests (schema.ts), calls the interface,
 * answers, and forwards the interface's events to subscribed clients. A bad request gets an
 * error naming the field and the fix; it never takes the daemon down.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Endpoint } from '../core/endpoint.js';
import { type Log, type LogFields, SILENT_LOG } from '../core/log.js';
import { OvpnError, type OvpnInterface } from '../device/ovpn-interface.js';
import {
  type ErrorBody,
  kebabCase,
  LineSplitter,
  MAX_LINE,
  type Notification,
  PROTOCOL_VERSION,
  renameKeys,
} from './protocol.js';
import { type ControlRequest, decodeRequest, requestId } from './schema.js';

/** Bytes a client may leave unread on its connection before the daemon stops adding to them. */
const MAX_BACKLOG = 1 << 20;

export class ControlServer {
  private readonly server: Server;
  private readonly subscribers = new Set<Socket>();
  /** Notifications a slow subscriber missed (see notify). */
  private notificationsDropped = 0;
  /** key-swap requests carried out, and key-swap-ntf sent (for metrics). */
  private keySwaps = 0;
  private keySwapNotifications = 0;

  /** `log` gets a line for every change a request makes (peers, keys, routes), never key bytes. */
  constructor(
    private readonly iface: OvpnInterface,
    private readonly path: string,
    private readonly onDelete: () => void,
    private readonly log: Log = SILENT_LOG,
  ) {
    this.server = createServer((socket) => this.serve(socket));
    iface.on('peer-del-ntf', (e) =>
      this.notify({ ntf: 'peer-del-ntf', ifname: e.ifname, peer: { id: e.peerId, 'del-reason': e.reason } }),
    );
    iface.on('key-swap-ntf', (e) => {
      this.keySwapNotifications++;
      this.notify({ ntf: 'key-swap-ntf', ifname: e.ifname, keyconf: { 'peer-id': e.peerId, 'key-id': e.keyId } });
    });
    iface.on('peer-float-ntf', (e) =>
      this.notify({ ntf: 'peer-float-ntf', ifname: e.ifname, peer: { id: e.peerId, ...remoteAttrs(e.remote) } }),
    );
    iface.on('warning', (e) => this.notify({ ntf: 'warning-ntf', ifname: e.ifname, message: e.message }));
    iface.on('packet-ntf', (e) =>
      this.notify({
        ntf: 'packet-ntf',
        ifname: e.ifname,
        'peer-id': e.peerId,
        'local-port': e.localPort,
        remote: e.remote,
        data: e.data.toString('base64'),
      }),
    );
  }

  /** Listens on the socket path; a stale file left by a killed daemon is replaced. */
  async listen(): Promise<void> {
    // The TUN name is our lock: we only get here after creating it, so nobody else owns the path.
    if (existsSync(this.path)) unlinkSync(this.path);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  /**
   * Tells subscribers the interface is gone, stops listening and removes the socket. Resolves
   * once every subscriber's connection has flushed the goodbye (bounded by `flushMs`), so a
   * process exiting right after does not cut the notification off under load.
   */
  close(reason: string, flushMs = 2_000): Promise<void> {
    this.notify({ ntf: 'iface-del-ntf', ifname: this.iface.name, reason });
    const flushed = [...this.subscribers].map((socket) => new Promise<void>((resolve) => socket.end(resolve)));
    this.server.close();
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, flushMs)));
    return Promise.race([Promise.all(flushed).then(() => undefined), deadline]).finally(() => clearTimeout(timer));
  }

  /**
   * Writes a notification to every subscriber that keeps up. One whose unread backlog is over
   * MAX_BACKLOG misses it (counted, and reported by iface-get): a client that stops reading
   * must not make the daemon hold everything for it.
   */
  private notify(notification: Notification): void {
    // Set in place, not spread into a copy: under a control-packet flood an object spread here
    // was most of what V8 promoted to its old generation (bench/results/hostile-notes.md).
    notification.time = new Date().toISOString();
    const line = `${JSON.stringify(notification)}\n`;
    for (const socket of this.subscribers) {
      if (socket.writableLength > MAX_BACKLOG) this.notificationsDropped++;
      else socket.write(line);
    }
  }

  private serve(socket: Socket): void {
    const splitter = new LineSplitter();
    let buffered = 0;
    // Requests may complete asynchronously (a TCP connect); answers still go out in order.
    let answered = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('error', () => this.subscribers.delete(socket));
    socket.on('close', () => this.subscribers.delete(socket));
    socket.on('data', (chunk: string) => {
      buffered += chunk.length;
      const lines = splitter.push(chunk);
      if (lines.length > 0) buffered = 0;
      if (buffered > MAX_LINE) {
        socket.end(
          `${JSON.stringify({
            id: 0,
            ok: false,
            error: { code: 'EINVAL', message: `request longer than ${MAX_LINE} bytes` },
          })}\n`,
        );
        return;
      }
      for (const line of lines) {
        answered = answered.then(async () => {
          const response = await this.handleLine(line, socket);
          if (socket.destroyed) return;
          // A client that sends requests without reading the answers: stop reading its
          // requests until it has taken what is waiting for it.
          if (!socket.write(`${JSON.stringify(response)}\n`) && socket.writableLength > MAX_BACKLOG) {
            socket.pause();
            socket.once('drain', () => socket.resume());
          }
        });
      }
    });
  }

  private async handleLine(line: string, socket: Socket): Promise<object> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return {
        id: 0,
        ok: false,
        // Not a request object at all: `cmd`, as for any line that is not one (docs/CONTROL.md).
        error: { code: 'EINVAL', message: 'request is not valid JSON: send one JSON object per line', field: 'cmd' },
      };
    }
    const id = requestId(parsed);
    let cmd: string | undefined;
    try {
      const request = decodeRequest(parsed);
      cmd = request.cmd;
      const reply = await this.execute(request, socket);
      const change = describeChange(request);
      if (change !== null) this.log.info(change[0], { ifname: this.iface.name, ...change[1] });
      return { id, ok: true, ...reply };
    } catch (error) {
      const body = errorBody(error);
      this.log.debug('request refused', { ifname: this.iface.name, cmd, code: body.code, field: body.field });
      return { id, ok: false, error: body };
    }
  }

  /** Counters of the control socket itself, for metrics. */
  stats(): { notificationsDropped: number; keySwaps: number; keySwapNotifications: number; subscribers: number } {
    return {
      notificationsDropped: this.notificationsDropped,
      keySwaps: this.keySwaps,
      keySwapNotifications: this.keySwapNotifications,
      subscribers: this.subscribers.size,
    };
  }

  /** Runs a decoded request: its shape and types are checked, the values are the library's to judge. */
  private async execute(request: ControlRequest, socket: Socket): Promise<object> {
    const iface = this.iface;
    switch (request.cmd) {
      case 'hello':
        if (request.version !== PROTOCOL_VERSION) {
          this.log.warn('client of another control protocol version refused', {
            ifname: iface.name,
            'client-version': request.version,
            version: PROTOCOL_VERSION,
          });
          throw new ProtocolMismatch(
            `client speaks control protocol version ${request.version}, the daemon of ${iface.name} ` +
              `(pid ${process.pid}) speaks version ${PROTOCOL_VERSION}`,
          );
        }
        return { version: PROTOCOL_VERSION, pid: process.pid };
      case 'iface-get':
        return Object.assign(renameKeys(iface.info(), kebabCase) ?? {}, {
          pid: process.pid,
          'notifications-dropped': this.notificationsDropped,
        });
      case 'iface-del':
        setImmediate(this.onDelete);
        return {};
      case 'peer-new':
        if (request.peer.transport === 'tcp') await iface.newTcpPeer(request.peer);
        else iface.newPeer(request.peer);
        return {};
      case 'peer-set':
        iface.setPeer(request.peer);
        return {};
      case 'peer-get': {
        const id = request.peer?.id;
        if (id === undefined) return { peers: iface.getPeers().map((p) => renameKeys(p, kebabCase)) };
        return { peer: renameKeys(iface.getPeer(id), kebabCase) };
      }
      case 'peer-del':
        iface.delPeer(request.peer.id);
        return {};
      case 'key-new':
        iface.newKey(request.keyconf);
        return {};
      case 'key-get':
        return { keyconf: renameKeys(iface.getKey(request.keyconf.peerId, request.keyconf.slot), kebabCase) };
      case 'key-swap':
        iface.swapKeys(request.keyconf.peerId);
        this.keySwaps++;
        return {};
      case 'key-del':
        iface.delKey(request.keyconf.peerId, request.keyconf.slot);
        return {};
      case 'route-add':
        iface.addRoute(request.peerId, request.prefix);
        return {};
      case 'route-del':
        iface.delRoute(request.peerId, request.prefix);
        return {};
      case 'route-get':
        return { 'peer-id': request.peerId, routes: iface.getRoutes(request.peerId) };
      case 'packet-send':
        iface.sendPacket(request.peerId, request.data);
        return {};
      case 'subscribe':
        this.subscribers.add(socket);
        return {};
    }
  }
}

/** A hello whose version this daemon does not speak. */
class ProtocolMismatch extends Error {
  readonly code = 'EPROTO';
  readonly field = 'version';
}

/**
 * The log line for a request that changed something: what and which peer, with the values an
 * operator needs to follow the tunnel (addresses, slot, key-id, cipher), never key bytes.
 */
function describeChange(request: ControlRequest): [string, LogFields] | null {
  switch (request.cmd) {
    case 'peer-new': {
      const p = request.peer;
      return [
        'peer added',
        {
          peer: p.id,
          transport: p.transport ?? 'udp',
          remote: p.remoteIpv4 ?? p.remoteIpv6,
          'remote-port': p.remotePort,
          'local-port': p.localPort,
          'vpn-ipv4': p.vpnIpv4,
          'vpn-ipv6': p.vpnIpv6,
        },
      ];
    }
    case 'peer-set':
      return [
        'peer changed',
        {
          peer: request.peer.id,
          changed: Object.keys(request.peer)
            .filter((k) => k !== 'id')
            .map(kebabCase)
            .join(','),
        },
      ];
    case 'key-new': {
      const k = request.keyconf;
      return ['key installed', { peer: k.peerId, slot: k.slot, 'key-id': k.keyId, cipher: k.cipherAlg }];
    }
    case 'key-swap':
      return ['keys swapped', { peer: request.keyconf.peerId }];
    case 'key-del':
      return ['key deleted', { peer: request.keyconf.peerId, slot: request.keyconf.slot ?? 'both' }];
    case 'route-add':
    case 'route-del':
      return [
        request.cmd === 'route-add' ? 'route added' : 'route deleted',
        { peer: request.peerId, prefix: request.prefix },
      ];
    case 'iface-del':
      return ['interface deletion requested', {}];
    default:
      return null;
  }
}

/** An endpoint as netlink attributes: remote-ipv4/6, remote-port, local-ipv4/6. */
function remoteAttrs(remote: Endpoint): Record<string, unknown> {
  const family = remote.family === 4 ? 'ipv4' : 'ipv6';
  return {
    [`remote-${family}`]: remote.address,
    'remote-port': remote.port,
    ...(remote.local === undefined ? {} : { [`local-${family}`]: remote.local }),
  };
}

function errorBody(error: unknown): ErrorBody {
  if (error instanceof OvpnError)
    return { code: error.code, message: error.message, ...(error.field === undefined ? {} : { field: error.field }) };
  const message = error instanceof Error ? error.message : String(error);
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return { code: typeof code === 'string' ? code : 'EIO', message };
}
