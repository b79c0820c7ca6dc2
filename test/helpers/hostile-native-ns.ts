/**
 * Scenarios for test/hostile-native.test.ts, run inside a private network namespace
 * (`unshare --net`): the shim under an admin's hand (issue 13, findings 10 and 12). Each reports
 * what it saw as `RESULT <json>`; the test asserts on it.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { HEADROOM, newBatch } from '../../src/core/batch.js';
import { newEndpoints, writeEndpoint } from '../../src/core/endpoint.js';
import { TunDevice } from '../../src/edge/tun.js';
import { UdpBind } from '../../src/edge/udp.js';
import { ipv4Packet } from './packets.js';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

setTimeout(() => {
  console.error('hostile-native-ns: scenario timed out');
  process.exit(3);
}, 15_000).unref();

function outcome(f: () => number): { returned?: number; threw?: string } {
  try {
    return { returned: f() };
  } catch (error) {
    return { threw: `${(error as { code?: string }).code}: ${(error as Error).message}` };
  }
}

/** `ip link set down` under a TUN, then a write: each packet refused alone (-EIO), nothing thrown. */
async function tunDownWrite() {
  const tun = TunDevice.open('hxt0');
  tun.up();
  ip('addr', 'add', '10.98.0.1/24', 'dev', 'hxt0');
  ip('link', 'set', 'hxt0', 'down');
  const batch = newBatch(4, 2048);
  for (let i = 0; i < 3; i++) {
    const p = ipv4Packet('10.98.0.2', '10.98.0.1', `down ${i}`);
    p.copy(batch.bufs[i]!, HEADROOM);
    batch.offsets[i] = HEADROOM;
    batch.sizes[i] = p.length;
  }
  batch.count = 3;
  const result = outcome(() => tun.write(batch));
  const sizes = [...batch.sizes.subarray(0, 3)];
  tun.close();
  return { ...result, sizes };
}

/** A read into a slot smaller than the packet: dropped (-1), not handed on cut. */
async function tunSmallSlot() {
  const tun = TunDevice.open('hxt0');
  tun.up();
  ip('addr', 'add', '10.98.0.1/24', 'dev', 'hxt0');
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => tx.bind(0, '10.98.0.1', r));
  await new Promise<void>((r, j) => tx.send(Buffer.alloc(200, 7), 9, '10.98.0.2', (e) => (e ? j(e) : r())));
  tx.close();
  const batch = newBatch(1, 128); // 64 bytes after the headroom, for a 228-byte packet
  // The kernel's own IPv6 chatter may come first and fit; read until the datagram shows up.
  const sizes: number[] = [];
  for (let tries = 0; tries < 400 && !sizes.includes(-1); tries++) {
    if (tun.read(batch, 1) === 1) sizes.push(batch.sizes[0]!);
    else await new Promise((r) => setTimeout(r, 5));
  }
  tun.close();
  return { sizes };
}

/** A link-local peer whose interface is removed: sendmmsg's ENODEV costs the packet, not the process. */
async function linkLocalGone() {
  ip('link', 'add', 'hxd0', 'type', 'veth', 'peer', 'name', 'hxd1');
  ip('link', 'set', 'hxd0', 'up');
  ip('link', 'set', 'hxd1', 'up');
  ip('addr', 'add', 'fe80::1/64', 'dev', 'hxd0', 'nodad');
  const ifindex = (
    JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'hxd0']).toString()) as { ifindex: number }[]
  )[0]!.ifindex;
  const bind = UdpBind.open({ family: 6, address: '::', port: 0, gso: false });
  const batch = newBatch(2, 2048);
  const eps = newEndpoints(2);
  const send = () => {
    batch.count = 0;
    const p = Buffer.from('to a link-local peer');
    p.copy(batch.bufs[0]!, HEADROOM);
    batch.offsets[0] = HEADROOM;
    batch.sizes[0] = p.length;
    batch.count = 1;
    writeEndpoint(eps, 0, { address: 'fe80::2', port: 9, local: 'fe80::1', ifindex });
    return outcome(() => bind.send(batch, eps));
  };
  const before = send();
  ip('link', 'del', 'hxd0');
  const after = send();
  const size = batch.sizes[0];
  bind.close();
  return { before, after, size };
}

const scenarios: Record<string, () => Promise<unknown>> = {
  'tun-down-write': tunDownWrite,
  'tun-small-slot': tunSmallSlot,
  'link-local-gone': linkLocalGone,
};
const name = process.argv[2] ?? '';
const run = scenarios[name];
if (run === undefined) {
  console.error(`unknown scenario ${name}`);
  process.exit(2);
}
console.log(`RESULT ${JSON.stringify(await run())}`);
process.exit(0);
