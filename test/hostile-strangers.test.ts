/**
 * What anyone can send without a key is counted and leaves a trace in the log (issue 13,
 * finding 7): control packets, and traffic on a TCP connection no peer has. The interface runs
 * on the in-memory edges (manual clock); the TCP port is a real one on loopback, so no root.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { test } from 'node:test';
import { OvpnInterface } from '../src/device/ovpn-interface.js';
import { MemoryNetwork } from '../src/edge/memory.js';
import { framed } from './helpers/packets.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** An MP interface in memory with listening TCP peer 1 on a free loopback port. */
async function listening() {
  const net = new MemoryNetwork();
  const iface = OvpnInterface.create({ name: 'tun0', mode: 'MP', edges: net.host('10.0.0.1').edges });
  const warnings: string[] = [];
  iface.on('warning', (e) => warnings.push(e.message));
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await iface.newTcpPeer({ id: 1, transport: 'tcp', localPort: port, vpnIpv4: '5.5.5.2' });
  return { net, iface, port, warnings };
}

test('strangers: control packets and traffic on unassigned TCP connections are counted, and summarised in the log once a minute', async (t) => {
  const { net, iface, port, warnings } = await listening();
  const first = connect(port, '127.0.0.1');
  await once(first, 'connect');
  const stranger = connect(port, '127.0.0.1');
  await once(stranger, 'connect');
  t.after(() => {
    first.destroy();
    stranger.destroy();
    iface.destroy();
  });
  await turn();
  // The first connection holds peer 1; the stranger's waits for a peer and talks meanwhile.
  const hardReset = Buffer.concat([Buffer.from([0x38]), Buffer.alloc(13, 1)]);
  const dataForNobody = Buffer.from([0x48, 0x00, 0x00, 0x63, 0, 0, 0, 1, 9, 9, 9, 9]);
  stranger.write(Buffer.concat([framed(hardReset), framed(dataForNobody)]));
  for (let i = 0; i < 2000 && iface.info().unauthenticated.unassignedTcp < 2; i++) await turn();
  assert.deepEqual(iface.info().unauthenticated, { controlPackets: 1, fromUnknown: 1, unassignedTcp: 2 });
  assert.equal(iface.info().drops.unknownPeer, 1, 'the data packet for no peer is a drop as before');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^1 control packets since start \(1 from addresses no peer has\), 2 packets on TCP/);

  // More within the minute: counted, not told again; after it, told with what came since.
  stranger.write(framed(hardReset));
  for (let i = 0; i < 2000 && iface.info().unauthenticated.controlPackets < 2; i++) await turn();
  assert.equal(warnings.length, 1);
  // A minute on: the stranger's wait is over (it is closed), another one talks.
  net.clock.advance(60_000);
  const next = connect(port, '127.0.0.1');
  t.after(() => next.destroy());
  await once(next, 'connect');
  next.write(framed(hardReset));
  for (let i = 0; i < 2000 && iface.info().unauthenticated.controlPackets < 3; i++) await turn();
  assert.equal(warnings.length, 2);
  assert.match(warnings[1]!, /^2 control packets in the last 60 s \(2 from addresses no peer has\), 2 packets on TCP/);
});

test('strangers: a flood of silent connections pushes out silent ones, not the waiting client that opened with a packet', async (t) => {
  const { iface, port } = await listening();
  const sockets: ReturnType<typeof connect>[] = [];
  t.after(() => {
    for (const s of sockets) s.destroy();
    iface.destroy();
  });
  const dial = async () => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    await once(s, 'connect');
    return s;
  };
  await dial(); // the squatter: holds peer 1
  const client = await dial();
  client.write(framed(Buffer.concat([Buffer.from([0x38]), Buffer.alloc(13, 1)])));
  for (let i = 0; i < 2000 && iface.info().unauthenticated.controlPackets < 1; i++) await turn();
  const closed = (s: (typeof sockets)[number]) => s.destroyed || s.readableEnded;
  for (let n = 0; n < 100; n++) await dial();
  // 101 wait, 64 may: the 37 oldest silent ones (sockets[2..38]) are closed.
  for (let i = 0; i < 2000 && !closed(sockets[38]!); i++) await turn();
  assert.equal(closed(sockets[39]!), false);
  assert.ok(closed(sockets[2]!), 'the oldest silent connection was pushed out');
  assert.equal(closed(client), false, 'the client that spoke first still waits for its peer');
});
