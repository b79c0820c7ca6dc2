/**
 * A preload for the daemon (`node --import dist/bench/idle-stages/preload.js`) that charges the
 * CPU time of each data-path stage to it, for bench/idle-stages.sh: where an idle packet's CPU
 * goes (issue 14). Each wrapped method records its time including its callees ("total") and
 * without the wrapped ones among them ("self"), with process.cpuUsage, so time the daemon spends
 * preempted by the peer it just woke is not counted. Totals are written as JSON to
 * $OVPN_IDLE_STAGES_DIR/<pid>.json every 200 ms; the script takes the difference over a train.
 *
 * Methods are wrapped by name, private ones included: one that is renamed or gone stops the
 * daemon at start with its name, instead of leaving a silently empty row.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyContext } from '../../src/core/key-context.js';
import { DataPath } from '../../src/device/data-path.js';
import { Receiver } from '../../src/device/receive.js';
import { Transmitter } from '../../src/device/transmit.js';
import { TunReader } from '../../src/device/tun-reader.js';
import { TunDevice } from '../../src/edge/tun.js';
import { UdpBind } from '../../src/edge/udp.js';

export interface StageTotals {
  calls: number;
  /** µs of CPU including callees. */
  total: number;
  /** µs of CPU minus the wrapped callees' totals. */
  self: number;
}

const stages = new Map<string, StageTotals>();
/** Per wrapped call in progress: the CPU its wrapped callees spent so far. */
const children: number[] = [];

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function wrap(cls: { prototype: object }, method: string, label: string): void {
  const proto = cls.prototype as Record<string, unknown>;
  const original = proto[method];
  if (typeof original !== 'function')
    throw new Error(`idle-stages: ${label} has no method ${method}: update the preload`);
  const stage: StageTotals = { calls: 0, total: 0, self: 0 };
  stages.set(label, stage);
  proto[method] = function (this: unknown, ...args: unknown[]): unknown {
    const start = cpuMicros();
    children.push(0);
    try {
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } finally {
      const spent = cpuMicros() - start;
      stage.total += spent;
      stage.self += spent - children.pop()!;
      stage.calls++;
      if (children.length > 0) children[children.length - 1]! += spent;
    }
  };
}

// Transmit: TUN readable -> read through the flow queue -> route -> seal -> send.
wrap(DataPath, 'onTunReadable', 'transmit: TUN wakeup');
wrap(Transmitter, 'fromTun', 'transmit: batch');
wrap(TunReader, 'read', 'transmit: flow queue');
wrap(TunDevice, 'read', 'transmit: TUN read (native)');
wrap(Transmitter, 'route', 'transmit: route');
wrap(KeyContext, 'sealRun', 'transmit: seal');
wrap(Transmitter, 'send', 'transmit: send');
wrap(UdpBind, 'send', 'transmit: sendmmsg (native)');
// Receive: UDP readable -> recvmmsg -> open -> checks -> TUN write.
wrap(DataPath, 'receiveFrom', 'receive: UDP wakeup');
wrap(UdpBind, 'recv', 'receive: recvmmsg (native)');
wrap(Receiver, 'fromUdp', 'receive: batch');
wrap(KeyContext, 'openQueued', 'receive: open');
wrap(Receiver, 'deliver', 'receive: deliver');
wrap(TunDevice, 'write', 'receive: TUN write (native)');

/** What one wrapper costs by itself: a wrapped empty method, timed the same way. */
class Probe {
  empty(): void {}
}
wrap(Probe, 'empty', 'calibration: empty wrapped call');
const probe = new Probe();
for (let i = 0; i < 10_000; i++) probe.empty();

const dir = process.env.OVPN_IDLE_STAGES_DIR;
if (dir === undefined) throw new Error('idle-stages: set OVPN_IDLE_STAGES_DIR to where the totals go');
const out = join(dir, `${process.pid}.json`);
setInterval(() => writeFileSync(out, JSON.stringify(Object.fromEntries(stages))), 200).unref();
