/**
 * The process that owns one interface: creates the TUN and its data paths, serves the control
 * socket, and exits cleanly when the interface is deleted (del_iface, `ip link del`, SIGTERM).
 * Prints "ready" on stdout once the socket answers, so the launcher knows when to return.
 */
import { parseArgs } from 'node:util';
import { socketPath } from '../control/paths.js';
import { ControlServer } from '../control/server.js';
import { type InterfaceMode, OvpnError, OvpnInterface } from '../device/ovpn-interface.js';
import { envInteger } from '../edge/env.js';
import { watchNamespaceName } from './namespace.js';

const EXIT_EXISTS = 3;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

/** How often the log says what was dropped since the last time (nothing when nothing was). */
const DROP_REPORT_MS = envInteger('OVPN_DROP_REPORT_MS', 10_000, 100);

/**
 * A flood or a misconfiguration shows in the drop counters; this puts it in the log too, as one
 * line per period that names each counter that moved, for the interface and its peers together.
 */
function reportDrops(iface: OvpnInterface): NodeJS.Timeout {
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
      .map(([name, value]) => `${name} ${value - (last[name] ?? 0)}`);
    if (moved.length > 0) log(`dropped in the last ${DROP_REPORT_MS / 1000} s: ${moved.join(', ')}`);
    last = now;
  }, DROP_REPORT_MS);
  timer.unref();
  return timer;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ifname: { type: 'string' }, mode: { type: 'string', default: 'P2P' }, mtu: { type: 'string' } },
  });
  const ifname = values.ifname ?? '';
  let iface: OvpnInterface;
  try {
    iface = OvpnInterface.create({
      name: ifname,
      mode: values.mode as InterfaceMode,
      ...(values.mtu ? { mtu: Number(values.mtu) } : {}),
    });
  } catch (error) {
    process.stdout.write(`${(error as Error).message}\n`);
    process.exit(error instanceof OvpnError && error.code === 'EBUSY' ? EXIT_EXISTS : 1);
  }
  const server = new ControlServer(iface, socketPath(ifname, true), () => iface.destroy('deleted by del_iface'));
  iface.on('peer-del-ntf', (e) => log(`peer ${e.peerId} deleted, reason ${e.reason}`));
  iface.on('peer-float-ntf', (e) => log(`peer ${e.peerId} floated to ${e.remote.address} port ${e.remote.port}`));
  iface.on('warning', (e) => log(`warning: ${e.message}`));
  iface.on('closed', ({ reason }) => {
    log(`interface ${ifname} closed: ${reason}`);
    // Leave once the goodbye notifications are out.
    void server.close(reason).then(() => process.exit(0));
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
    process.on(signal, () => iface.destroy(`stopped by ${signal}`));
  const drops = reportDrops(iface);
  iface.on('closed', () => clearInterval(drops));
  const namespace = watchNamespaceName(() => iface.destroy('its network namespace was deleted (ip netns del)'));
  iface.on('closed', () => namespace?.close());
  await server.listen();
  log(`interface ${ifname} up in ${iface.mode} mode, pid ${process.pid}`);
  process.stdout.write('ready\n');
}

main().catch((error: unknown) => {
  log(`fatal: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
