#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * ovpn-dco: OpenVPN 2.6 with our engine as its data channel, in one process.
 * `ovpn-dco --config server.conf [--directive args…]`, as openvpn. It creates the interface the
 * config names (multi-peer for `server`), gives the TUN its address, serves the interface's
 * control socket (so `ovpn-cli tun0 get_peer` and `listen_mcast` work on it, as on a daemon's),
 * runs the TLS control channel, and logs one line per client connect/disconnect. A server with
 * `status FILE [SECONDS]` writes OpenVPN's status file (status.ts) at start, every SECONDS and on
 * exit, each time whole (a temporary file renamed over it). A client (or point-to-point peer)
 * tries its remotes in turn and starts again after ping-restart or a lost connection
 * (openvpn/reconnect.ts); it puts its own and the pushed addresses and routes on the TUN and takes
 * them off again when the session ends. SIGTERM or SIGINT (after explicit-exit-notify's goodbye)
 * destroys the interface and exits 0; a config error exits 1 with the parser's message.
 */
import { execFileSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { controlDir, socketPath } from '../control/paths.js';
import { ControlServer } from '../control/server.js';
import type { Log, LogFields } from '../core/log.js';
import { OvpnInterface } from '../device/ovpn-interface.js';
import {
  describeOpenVpnConfig,
  type OpenVpnConfig,
  OpenVpnConfigError,
  parseOpenVpnArgs,
  where,
} from '../openvpn/config.js';
import { type EnginePlan, planEngine } from '../openvpn/options.js';
import {
  ipArgs,
  mergePushed,
  type PushedConfig,
  parsePushed,
  type TunSetting,
  tunSettings,
} from '../openvpn/pushed.js';
import { ReconnectingClient } from '../openvpn/reconnect.js';
import { type ClientInfo, OpenvpnServer } from '../openvpn/server.js';
import { formatStatus, type StatusClient } from '../openvpn/status.js';
import { packageVersion } from './version.js';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

/**
 * What the control socket logs (peers and keys changed through it, refused requests at verb 4
 * and up), as this program's own lines: the message, then its fields as key=value.
 */
function controlLog(verb: number): Log {
  const at =
    (prefix: string) =>
    (msg: string, fields: LogFields = {}) => {
      const pairs = Object.entries(fields).filter(([, value]) => value !== undefined);
      log(`${prefix}${msg}${pairs.map(([key, value]) => ` ${key}=${value}`).join('')}`);
    };
  return { error: at('error: '), warn: at('warning: '), info: at(''), debug: verb >= 4 ? at('') : () => {} };
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

/** Runs `ip`, logging instead of throwing: for settings the tunnel can live without. */
function ipQuietly(args: string[]): boolean {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    log(`warning: ip ${args.join(' ')}: ${stderr || (error as Error).message}`);
    return false;
  }
}

/** `dev tun` lets the kernel number the device, as OpenVPN does; we take the first free tunN. */
function deviceName(config: OpenVpnConfig): string {
  if (config.dev.fixed) return config.dev.name;
  for (let n = 0; ; n++) if (!existsSync(`/sys/class/net/${config.dev.name}${n}`)) return `${config.dev.name}${n}`;
}

async function readConfig(): Promise<{ config: OpenVpnConfig; plan: EnginePlan }> {
  try {
    const config = await resolveRemotes(parseOpenVpnArgs(process.argv.slice(2)));
    return { config, plan: planEngine(config) };
  } catch (error) {
    process.stderr.write(`ovpn-dco: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

/**
 * The core takes IPv4 addresses; a client.ovpn usually names its servers. Each name is looked up
 * once, at start; one that does not resolve is left out (as OpenVPN goes on to the next remote),
 * and only when none does is it an error.
 */
async function resolveRemotes(config: OpenVpnConfig): Promise<OpenVpnConfig> {
  const remotes: OpenVpnConfig['remotes'] = [];
  let failure: string | undefined;
  for (const remote of config.remotes) {
    if (isIP(remote.host) !== 0) {
      remotes.push(remote);
      continue;
    }
    try {
      const { address } = await lookup(remote.host, { family: 4 });
      log(`remote ${remote.host} is ${address}`);
      remotes.push({ ...remote, host: address });
    } catch (error) {
      failure = `remote ${remote.host}: ${(error as Error).message}`;
      log(`warning: ${failure}; skipped`);
    }
  }
  if (remotes.length === 0 && failure !== undefined) {
    const at = config.seen.get('remote');
    throw new OpenVpnConfigError(`${at === undefined ? 'command line' : where(at)}: ${failure}`);
  }
  return { ...config, remotes };
}

async function main(): Promise<void> {
  const { config, plan } = await readConfig();
  if (config.verb >= 4) log(`settings:\n${describeOpenVpnConfig(config)}`);
  for (const note of [...config.notes, ...plan.notes]) log(`note: ${note}`);
  const name = deviceName(config);
  const iface = OvpnInterface.create({ name, mode: plan.engine.mode, mtu: config.tunMtu });
  const undo: (() => void)[] = [];
  let stopping = false;
  let engine: OpenvpnServer | ReconnectingClient | undefined;
  const onTun = new TunState(name);
  let status: StatusWriter | undefined;
  // The namespace's socket directory goes again on exit if we made it and nothing else is in it.
  if (!existsSync(controlDir())) undo.push(() => rmdirQuietly(controlDir()));
  const control = new ControlServer(
    iface,
    socketPath(name, true),
    () => iface.destroy('deleted by del_iface'),
    controlLog(config.verb),
  );
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${reason}`);
    // The status file's last word still lists the clients, with their final counts.
    status?.finish();
    // Goodbyes go out while the interface can still send. A server with explicit-exit-notify
    // first tells its clients to reconnect (RESTART), then its sessions say goodbye; a client
    // sends EXIT and waits until it is acknowledged or its time is up.
    if (engine instanceof ReconnectingClient) {
      if (await engine.exit()) log('exit notification sent to the server');
    } else {
      if (engine !== undefined && config.explicitExitNotify > 0)
        await engine.notifyRestart(config.explicitExitNotify === 2);
      engine?.close();
    }
    // What we routed through the TUN comes off before it goes (as openvpn deletes its routes).
    onTun.clear();
    iface.destroy(reason);
  };
  iface.on('closed', ({ reason }) => {
    stopping = true;
    log(`interface ${name} closed: ${reason}`);
    status?.finish();
    // Deleted from outside (ip link del, del_iface): no more attempts on an interface that is gone.
    if (engine instanceof ReconnectingClient) engine.close();
    // Leave once the goodbye notifications are out (and the socket with them), undoing what we did.
    void control.close(reason).then(() => {
      for (const step of undo.splice(0).reverse()) step();
      process.exit(0);
    });
  });
  iface.on('warning', (e) => log(`warning: ${e.message}`));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(`stopped by ${signal}`));

  // A server's own addresses; every other role's come with its TUN settings (start()).
  if (plan.tun === undefined) {
    if (plan.address !== null) ip('addr', 'add', ...plan.address, 'dev', name);
    if (plan.address6 !== null) ip('-6', 'addr', 'add', ...plan.address6, 'dev', name);
  }
  ip('link', 'set', name, 'up');
  if (config.role === 'server' && config.clientToClient) enableForwarding(undo);

  engine = start(plan, iface, onTun);
  if (config.status !== null && engine instanceof OpenvpnServer)
    status = new StatusWriter(config.status.path, config.status.interval, config.status.version, engine, iface);
  await control.listen();
  log(`interface ${name} up (${config.role}), control socket ${socketPath(name)}, pid ${process.pid}`);
  log('Initialization Sequence Completed');
}

/**
 * `status FILE [SECONDS]`: the server's clients, as OpenVPN writes them, now, every SECONDS and
 * once more at the end. Bytes are what crossed the socket for the client, as OpenVPN counts them:
 * its peer's link bytes (data packets both ways, and the control packets we send through it) plus
 * the control packets it sent us, which the interface hands up uncounted. The peer-id is ours, the
 * client id counts connections from 0.
 */
class StatusWriter {
  private readonly clients = new Map<number, ClientInfo & { since: number; clientId: number }>();
  private nextClientId = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly title = `ovpn-dco ${packageVersion()} (OpenVPN 2.6 status format)`;
  private finished = false;
  /** Control bytes received, by remote "address:port", from a client's first packet on. */
  private readonly controlRx = new Map<string, { bytes: number; at: number }>();

  constructor(
    private readonly path: string,
    interval: number,
    private readonly version: 1 | 2 | 3,
    server: OpenvpnServer,
    private readonly iface: OvpnInterface,
  ) {
    server.on('connected', (c) => {
      const { established: _, ...info } = c;
      this.clients.set(c.peerId, { ...info, since: Math.floor(Date.now() / 1000), clientId: this.nextClientId++ });
      this.write();
    });
    iface.on('packet-ntf', (e) => {
      const key = `${e.remote.address}:${e.remote.port}`;
      const entry = this.controlRx.get(key) ?? { bytes: 0, at: 0 };
      entry.bytes += e.data.length;
      entry.at = Date.now();
      this.controlRx.set(key, entry);
    });
    server.on('disconnected', (c) => {
      this.clients.delete(c.peerId);
      this.controlRx.delete(c.remote);
      this.write();
    });
    this.write();
    this.timer = setInterval(() => this.write(), Math.max(1, interval) * 1000);
    this.timer.unref();
  }

  finish(): void {
    if (this.finished) return;
    this.write();
    this.finished = true;
    clearInterval(this.timer);
  }

  private write(): void {
    if (this.finished) return;
    const clients: StatusClient[] = [];
    // Addresses that never became a client are forgotten after a while.
    const connected = new Set([...this.clients.values()].map((c) => c.remote));
    for (const [key, entry] of this.controlRx)
      if (!connected.has(key) && Date.now() - entry.at > 120_000) this.controlRx.delete(key);
    for (const c of this.clients.values()) {
      let stats: { linkRxBytes: number; linkTxBytes: number } = { linkRxBytes: 0, linkTxBytes: 0 };
      try {
        stats = this.iface.getPeer(c.peerId);
      } catch {
        // Its peer is gone already: the disconnect event follows.
      }
      const colon = c.remote.lastIndexOf(':');
      clients.push({
        ...(c.commonName === undefined ? {} : { commonName: c.commonName }),
        realAddress: c.remote.slice(0, colon),
        realPort: Number(c.remote.slice(colon + 1)),
        virtualAddress: c.address,
        ...(c.address6 === undefined ? {} : { virtualIpv6Address: c.address6 }),
        bytesReceived: stats.linkRxBytes + (this.controlRx.get(c.remote)?.bytes ?? 0),
        bytesSent: stats.linkTxBytes,
        connectedSince: c.since,
        clientId: c.clientId,
        peerId: c.peerId,
        cipher: c.cipher ?? 'none',
      });
    }
    const routes = clients.map((c) => ({
      virtualAddress: c.virtualAddress ?? '',
      ...(c.commonName === undefined ? {} : { commonName: c.commonName }),
      realAddress: c.realAddress,
      realPort: c.realPort,
      lastRef: c.connectedSince,
    }));
    const snapshot = { title: this.title, time: Math.floor(Date.now() / 1000), clients, routes };
    const text = formatStatus({ ...snapshot, maxBcastQueue: 0, dcoEnabled: true }, this.version);
    const temporary = `${this.path}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, text);
      renameSync(temporary, this.path);
    } catch (error) {
      log(`warning: status file ${this.path}: ${(error as Error).message}`);
      try {
        unlinkSync(temporary);
      } catch {
        // never made
      }
    }
  }
}

function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Another interface's socket is in it: it stays.
  }
}

/** client-to-client: clients reach each other through the kernel; undone on exit if we turned it on. */
function enableForwarding(undo: (() => void)[]): void {
  if (readFileSync(IP_FORWARD, 'utf8').trim() === '1') return;
  writeFileSync(IP_FORWARD, '1');
  undo.push(() => writeFileSync(IP_FORWARD, '0'));
}

function start(plan: EnginePlan, iface: OvpnInterface, onTun: TunState): OpenvpnServer | ReconnectingClient {
  if (plan.engine.kind === 'server') {
    const server = new OpenvpnServer({ ...plan.engine.options, iface });
    server.on('connected', (c) =>
      log(`client connected: ${c.commonName ?? '(no CN)'} from ${c.remote}, VPN address ${c.address}, ${c.cipher}`),
    );
    server.on('disconnected', (c) =>
      log(`client disconnected: ${c.commonName ?? '(no CN)'} from ${c.remote}, VPN address ${c.address}: ${c.reason}`),
    );
    server.on('refused', (r) => log(`client refused: ${r.remote}: ${r.reason}`));
    server.start().catch((error: Error) => {
      log(`fatal: ${error.message}`);
      iface.destroy(error.message);
    });
    return server;
  }
  const { tun, connect } = plan;
  if (tun === undefined || connect === undefined) throw new Error('a point-to-point plan without its TUN settings');
  const pull = plan.engine.options.pull === true;
  // The config's own settings stay for the process's lifetime; a pull client adds the pushed ones.
  if (!pull) onTun.apply(tun);
  const client = new ReconnectingClient({ iface, tunnel: plan.engine.options, connect });
  client.on('attempt', ({ remote, attempt }) =>
    log(`attempt ${attempt}: ${remote.transport.toUpperCase()} ${remote.host}:${remote.port}`),
  );
  client.on('established', (e) => {
    log(`peer ${e.commonName ?? '(no CN)'} at ${e.remote.host}:${e.remote.port}: key ${e.keyId} up, ${e.cipher}`);
    if (e.keyId !== 0 || e.pushed === undefined) return;
    // A pull client takes its addresses and routes from the PUSH_REPLY.
    const pushed = parsePushed(e.pushed);
    onTun.apply(mergePushed(tun, pushed));
    if (pushed.ifconfig !== undefined) log(`pushed address ${pushed.ifconfig.local}`);
  });
  client.on('down', ({ reason, pauseSeconds, wasUp }) => {
    // The pushed settings are off before the line says so (the tests read the line, then the TUN).
    if (pull) onTun.clear();
    log(`${wasUp ? 'connection lost' : 'attempt failed'}: ${reason}; next attempt in ${pauseSeconds} s`);
  });
  client.on('gave-up', ({ reason }) => {
    log(`fatal: ${reason}`);
    iface.destroy(reason);
  });
  client.on('error', (error) => log(`error: ${error.message}`));
  client.start();
  return client;
}

/** The addresses and routes we put on the TUN, so that exactly they come off again. */
class TunState {
  private readonly applied: TunSetting[] = [];

  constructor(private readonly name: string) {}

  apply(settings: Omit<PushedConfig, 'other'>): void {
    const { settings: list, skipped } = tunSettings(settings);
    for (const what of skipped) log(`warning: ${what}: not an address we can route, skipped`);
    for (const setting of list) {
      if (!ipQuietly(ipArgs(setting, 'add', this.name))) continue;
      this.applied.push(setting);
      if (setting.object === 'route') log(`route ${setting.args.join(' ')} dev ${this.name}`);
    }
  }

  /** Routes first (they may lean on an address), then addresses, newest first. */
  clear(): void {
    const all = this.applied.splice(0).reverse();
    for (const setting of [...all.filter((s) => s.object === 'route'), ...all.filter((s) => s.object === 'addr')])
      ipQuietly(ipArgs(setting, 'del', this.name));
  }
}

main().catch((error: unknown) => {
  log(`fatal: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
