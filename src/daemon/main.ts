#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * The process that owns one interface: creates the TUN and its data paths, serves the control
 * socket, and exits cleanly when the interface is deleted (del_iface, `ip link del`, SIGTERM).
 * Prints "ready" on stdout once the socket answers (and the config file, if any, is applied), so
 * the launcher knows when to return; under systemd (NOTIFY_SOCKET) it also reports READY=1.
 *
 *   --ifname NAME [--mode P2P|MP] [--mtu N]    the interface
 *   --config-file PATH                          peers, keys, addresses, routes (config-file.ts)
 *   --foreground                                log to stderr (also when stderr is the journal)
 *   --log-level error|warn|info|debug           default OVPN_LOG_LEVEL, else info
 *   --metrics-port N [--metrics-address ADDR]   Prometheus /metrics (OVPN_METRICS_PORT, _ADDRESS)
 */
import { spawn } from 'node:child_process';
import { statSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { CONTROL_ROOT, logPath, socketPath } from '../control/paths.js';
import { ControlServer } from '../control/server.js';
import { type LogLevel, parseLogLevel } from '../core/log.js';
import { type InterfaceMode, OvpnError, OvpnInterface } from '../device/ovpn-interface.js';
import { envInteger } from '../edge/env.js';
import { applyInterfaceConfig, type InterfaceConfig, readInterfaceConfig } from './config-file.js';
import { CappedLogFile, DEFAULT_LOG_MAX_BYTES, Logger, stderrIsJournal, stderrTarget } from './log.js';
import { processSnapshot, serveMetrics } from './metrics.js';
import { watchNamespaceName } from './namespace.js';
import { sweepStaleNamespaceDirs } from './run-dir.js';

const EXIT_EXISTS = 3;

/** How often the log says what was dropped since the last time (nothing when nothing was). */
const DROP_REPORT_MS = envInteger('OVPN_DROP_REPORT_MS', 10_000, 100);

/**
 * A flood or a misconfiguration shows in the drop counters; this puts it in the log too, as one
 * line per period that names each counter that moved, for the interface and its peers together.
 */
function reportDrops(iface: OvpnInterface, log: Logger): NodeJS.Timeout {
  const total = (): Record<string, number> => {
    const sum: Record<string, number> = { ...iface.info().drops };
    for (const peer of iface.getPeers()) {
      for (const [name, value] of Object.entries(peer.drops)) sum[name] = (sum[name] ?? 0) + value;
    }
    return sum;
  };
  let last = total();
  const timer = setInterval(() => {
    const now = total();
    const moved = Object.entries(now)
      .filter(([name, value]) => value > (last[name] ?? 0))
      .map(([name, value]) => [name, value - (last[name] ?? 0)]);
    if (moved.length > 0)
      log.warn('packets dropped', { 'period-s': DROP_REPORT_MS / 1000, ...Object.fromEntries(moved) });
    last = now;
  }, DROP_REPORT_MS);
  timer.unref();
  return timer;
}

/** Fails start-up: the reason on stdout (the launcher shows it) and, in the foreground, stderr. */
function refuse(message: string, code: number, foreground: boolean): never {
  process.stdout.write(`${message}\n`);
  if (foreground) process.stderr.write(`${message}\n`);
  process.exit(code);
}

/**
 * READY=1 to systemd through systemd-notify (node cannot send unix datagrams). `--pid` makes the
 * message carry our pid, the unit's main pid, so it is attributed to the unit even though
 * systemd-notify itself exits at once.
 */
function notifySystemd(log: Logger, status: string): void {
  if (process.env.NOTIFY_SOCKET === undefined) return;
  const child = spawn('systemd-notify', ['--ready', `--pid=${process.pid}`, `--status=${status}`], { stdio: 'ignore' });
  child.on('error', (error) => log.error('cannot tell systemd we are ready', { error: error.message }));
  child.on('exit', (code) => {
    if (code !== 0) log.error('systemd-notify failed', { code });
  });
}

/** The launcher opened the log file as our stderr; a start that failed leaves no empty log behind. */
function removeEmptyLog(ifname: string): void {
  try {
    const path = logPath(ifname);
    if (statSync(path).size === 0) unlinkSync(path);
  } catch {
    // no log, or not a valid name
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ifname: { type: 'string' },
      mode: { type: 'string' },
      mtu: { type: 'string' },
      foreground: { type: 'boolean', default: false },
      'log-level': { type: 'string' },
      'config-file': { type: 'string' },
      'metrics-port': { type: 'string' },
      'metrics-address': { type: 'string' },
    },
  });
  const ifname = values.ifname ?? '';
  const foreground = values.foreground || stderrIsJournal();
  let level: LogLevel;
  let config: InterfaceConfig | null = null;
  let metricsPort: number | null = null;
  try {
    const levelFlag = values['log-level'];
    level =
      levelFlag !== undefined
        ? parseLogLevel(levelFlag, '--log-level')
        : parseLogLevel(process.env.OVPN_LOG_LEVEL || 'info', 'OVPN_LOG_LEVEL');
    if (values['config-file'] !== undefined) config = readInterfaceConfig(values['config-file']);
    const port = values['metrics-port'] ?? process.env.OVPN_METRICS_PORT;
    if (port !== undefined && port !== '') {
      metricsPort = Number(port);
      if (!Number.isInteger(metricsPort) || metricsPort < 1 || metricsPort > 65535)
        throw new Error(`--metrics-port must be a port number from 1 to 65535, got ${JSON.stringify(port)}`);
    }
  } catch (error) {
    removeEmptyLog(ifname);
    refuse((error as Error).message, 1, foreground);
  }
  let iface: OvpnInterface;
  try {
    const mode = (values.mode ?? config?.mode ?? 'P2P') as InterfaceMode;
    const mtu = values.mtu === undefined ? config?.mtu : Number(values.mtu);
    iface = OvpnInterface.create({ name: ifname, mode, ...(mtu === undefined ? {} : { mtu }) });
  } catch (error) {
    const exists = error instanceof OvpnError && error.code === 'EBUSY';
    if (!exists) removeEmptyLog(ifname);
    refuse((error as Error).message, exists ? EXIT_EXISTS : 1, foreground);
  }
  const target = foreground
    ? stderrTarget
    : new CappedLogFile(logPath(ifname), envInteger('OVPN_LOG_MAX_BYTES', DEFAULT_LOG_MAX_BYTES, 4096));
  const log = new Logger(target, level, { ifname });
  for (const dir of sweepStaleNamespaceDirs(CONTROL_ROOT)) log.debug('removed directory of a gone namespace', { dir });

  const server = new ControlServer(iface, socketPath(ifname, true), () => iface.destroy('deleted by del_iface'), log);
  let metrics: Server | null = null;
  let exitCode = 0;
  iface.on('peer-del-ntf', (e) => log.info('peer deleted', { peer: e.peerId, reason: e.reason }));
  iface.on('peer-float-ntf', (e) =>
    log.info('peer floated', {
      peer: e.peerId,
      remote: e.remote.address,
      'remote-port': e.remote.port,
      local: e.remote.local,
    }),
  );
  iface.on('key-swap-ntf', (e) =>
    log.info('key near its last packet-id: renegotiate', { peer: e.peerId, 'key-id': e.keyId }),
  );
  iface.on('warning', (e) => log.warn(e.message));
  const drops = reportDrops(iface, log);
  const namespace = watchNamespaceName(() => iface.destroy('its network namespace was deleted (ip netns del)'));
  iface.on('closed', ({ reason }) => {
    log.info('interface closed', { reason });
    clearInterval(drops);
    namespace?.close();
    metrics?.close();
    // Leave once the goodbye notifications are out; the socket goes, the capped log stays.
    void server.close(reason).then(() => {
      log.close();
      process.exit(exitCode);
    });
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
    process.on(signal, () => iface.destroy(`stopped by ${signal}`));

  await server.listen();
  try {
    if (config !== null) await applyInterfaceConfig(iface, config, log);
    if (metricsPort !== null) {
      const address = values['metrics-address'] ?? process.env.OVPN_METRICS_ADDRESS ?? '127.0.0.1';
      metrics = await serveMetrics(
        () => ({
          info: iface.info(),
          peers: iface.getPeers(),
          control: server.stats(),
          process: processSnapshot(),
        }),
        metricsPort,
        address,
      );
      log.info('metrics served', {
        url: `http://${address.includes(':') ? `[${address}]` : address}:${metricsPort}/metrics`,
      });
    }
  } catch (error) {
    log.error('start-up failed', { error: (error as Error).message });
    process.stdout.write(`${(error as Error).message}\n`);
    exitCode = 1;
    iface.destroy(`start-up failed: ${(error as Error).message}`);
    return;
  }
  log.info('interface up', { mode: iface.mode, pid: process.pid, peers: iface.info().peers });
  process.stdout.write('ready\n');
  notifySystemd(log, `${ifname} up, ${iface.info().peers} peers`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${new Date().toISOString()} fatal: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
