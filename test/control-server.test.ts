/**
 * The daemon's control socket (src/control/server.ts) against clients that do not read: a
 * subscriber that never reads misses notifications (counted) instead of making the daemon hold
 * them all, and a client that pipelines requests without reading the answers is paused. Runs
 * without root: the interface is on the in-memory edges, the socket in a temporary directory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlServer } from '../src/control/server.js';
import { OvpnInterface } from '../src/device/ovpn-interface.js';
import { MemoryNetwork } from '../src/edge/memory.js';
import { ask, open } from './helpers/control-socket.js';

test('control socket: a subscriber that never reads misses notifications, counted; the daemon holds a bounded backlog', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-control-'));
  const net = new MemoryNetwork();
  const host = net.host('10.0.0.1');
  const iface = OvpnInterface.create({
    name: 'tun0',
    edges: host.edges,
    controlQueue: { rate: 1_000_000, burst: 1_000_000, slots: 100_000, bytes: 1 << 30 },
  });
  iface.newPeer({ id: 1, localPort: 1194, remoteIpv4: '10.0.0.2', remotePort: 1194 });
  const server = new ControlServer(iface, join(dir, 'tun0.sock'), () => iface.destroy());
  await server.listen();
  const stuck = await open(join(dir, 'tun0.sock'));
  t.after(async () => {
    stuck.destroy();
    iface.destroy();
    await server.close('test over', 100);
    rmSync(dir, { recursive: true, force: true });
  });
  stuck.write(`${JSON.stringify({ id: 1, cmd: 'subscribe' })}\n`);
  stuck.pause();
  // Wait until the subscription is in place: its answer is waiting unread on the socket.
  await new Promise<void>((resolve) => stuck.once('readable', resolve));

  const sender = net.host('10.0.0.9').openUdp(5000);
  const SENT = 4000;
  let handedUp = 0;
  iface.on('packet-ntf', () => handedUp++);
  for (let n = 0; n < SENT; n++) sender.sendTo(Buffer.alloc(1000, 0x38), { address: '10.0.0.1', port: 1194 });
  while (handedUp < SENT) await new Promise((resolve) => setImmediate(resolve));

  const info = await ask(join(dir, 'tun0.sock'), { id: 2, cmd: 'iface-get' });
  const dropped = info['notifications-dropped'] as number;
  // Each notification is about 1.4 KB of JSON: the kernel's socket buffer and a 1 MiB backlog
  // hold a fraction of 4000; the rest must have been refused, not queued.
  assert.ok(dropped > SENT / 2, `most notifications were dropped for the stuck subscriber (${dropped})`);
  assert.ok(dropped < SENT, 'the first ones were written');
});

test('control socket: a line that is not JSON is refused naming cmd, and the connection serves the next line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-control-'));
  const iface = OvpnInterface.create({ name: 'tun0', edges: new MemoryNetwork().host('10.0.0.1').edges });
  const path = join(dir, 'tun0.sock');
  const server = new ControlServer(iface, path, () => iface.destroy());
  await server.listen();
  const socket = await open(path);
  t.after(async () => {
    socket.destroy();
    iface.destroy();
    await server.close('test over', 100);
    rmSync(dir, { recursive: true, force: true });
  });
  socket.write('{"id": 3, "cmd": "iface-g\n{"id": 4, "cmd": "iface-get"}\n');
  let text = '';
  for await (const chunk of socket) {
    text += String(chunk);
    if (text.split('\n').length > 2) break;
  }
  const [first, second] = text.split('\n').map((line) => (line === '' ? null : JSON.parse(line)));
  assert.deepEqual(first.error, {
    code: 'EINVAL',
    message: 'request is not valid JSON: send one JSON object per line',
    field: 'cmd',
  });
  assert.equal(second.id, 4);
  assert.equal(second.ok, true);
});
