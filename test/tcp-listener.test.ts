/**
 * A listening TCP port against strangers (issue 13, finding 4): connections that no peer has
 * are bounded in number and in time, and a connection that never authenticates can neither keep
 * a listening peer from its real client nor end it. The interface runs on the in-memory edges
 * (manual clock); the TCP port is a real one on loopback, so no root is needed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { KeyContext } from '../src/core/key-context.js';
import { OvpnInterface, type PacketEvent } from '../src/device/ovpn-interface.js';
import { MemoryNetwork } from '../src/edge/memory.js';
import { installKey, keyPair, sealOne } from './helpers/keys.js';
import { framed, ipv4Packet } from './helpers/packets.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, what: string, turns = 2000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await turn();
  }
  assert.fail(`${what}: not so after ${turns} turns`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

async function dial(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

const closed = (socket: Socket) => socket.destroyed || socket.readableEnded;

async function setup() {
  const net = new MemoryNetwork();
  const host = net.host('10.0.0.1');
  const iface = OvpnInterface.create({ name: 'tun0', mode: 'MP', edges: host.edges });
  const warnings: string[] = [];
  iface.on('warning', (e) => warnings.push(e.message));
  const port = await freePort();
  return { net, iface, tun: host.tun('tun0'), port, warnings };
}

test('tcp listener: a stranger who connects first holds the peer only until the real client authenticates, and cannot end it', async (t) => {
  const { iface, tun, port } = await setup();
  const sockets: Socket[] = [];
  t.after(() => {
    for (const s of sockets) s.destroy();
    iface.destroy();
  });
  await iface.newTcpPeer({ id: 1, transport: 'tcp', localPort: port, vpnIpv4: '5.5.5.2' });
  const [ours, theirs] = keyPair('AES-256-GCM');
  installKey(iface, 1, ours);
  const deleted: string[] = [];
  iface.on('peer-del-ntf', (e) => deleted.push(`${e.peerId} ${e.reason}`));

  // A stranger takes the waiting peer, then leaves: the peer waits again, it is not deleted.
  const early = await dial(port);
  sockets.push(early);
  await until(() => iface.getPeer(1).remotePort === early.localPort, 'the first connection is given to peer 1');
  early.destroy();
  await until(() => iface.getPeer(1).remotePort !== undefined && closed(early), 'the stranger left');
  await turn();
  assert.deepEqual(deleted, [], 'a stranger leaving does not end the peer');

  // Another stranger holds it, idle; the real client comes second and authenticates.
  const squatter = await dial(port);
  const real = await dial(port);
  sockets.push(squatter, real);
  await until(() => iface.getPeer(1).remotePort === squatter.localPort, 'the squatter holds peer 1');
  const packet = ipv4Packet('5.5.5.2', '5.5.5.1', 'the real client');
  real.write(framed(sealOne(new KeyContext(theirs), packet, 1)));
  assert.deepEqual(await tun.written.next(), packet, 'the real client reaches the TUN');
  assert.equal(iface.getPeer(1).remotePort, real.localPort, 'peer 1 follows the connection that authenticated');
  await until(() => closed(squatter), 'the squatter is closed');
  assert.deepEqual(deleted, []);

  // Now proven: its end is the peer's end.
  real.destroy();
  await until(() => deleted.length === 1, 'the real client leaving ends the peer');
  assert.deepEqual(deleted, ['1 TRANSPORT_DISCONNECT']);
});

test('tcp listener: connections no peer takes are bounded: 64 at most (the oldest closed) and 60 s each', async (t) => {
  const { net, iface, port, warnings } = await setup();
  const sockets: Socket[] = [];
  t.after(() => {
    for (const s of sockets) s.destroy();
    iface.destroy();
  });
  // A listening peer opens the port and takes the first connection; the rest wait for a peer.
  await iface.newTcpPeer({ id: 1, transport: 'tcp', localPort: port, vpnIpv4: '5.5.5.2' });
  for (let n = 0; n < 66; n++) sockets.push(await dial(port));
  await until(() => closed(sockets[1]!), 'the oldest waiting connection is closed for the 65th');
  assert.equal(closed(sockets[2]!), false);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /more than 64 connections on TCP port \d+ wait for a peer: the oldest was closed/);

  net.clock.advance(59_999);
  await turn();
  assert.equal(closed(sockets[2]!), false, 'not before 60 s');
  net.clock.advance(1);
  await until(() => sockets.slice(1).every(closed), 'every waiting connection is closed after 60 s');
  assert.equal(closed(sockets[0]!), false, "the peer's connection is not a waiting one");
});

test("tcp listen: a port with no peer hands up each connection's control packets with its address; sendControl answers on that connection; a peer named by that address takes it", async () => {
  const { iface, tun, port } = await setup();
  const events: PacketEvent[] = [];
  iface.on('packet-ntf', (e) => events.push(e));
  assert.equal(await iface.listen('tcp', port), port);
  const [one, two] = [await dial(port), await dial(port)];
  const hardReset = Buffer.from('38a1b2c3d4e5f60718000000000000', 'hex');
  one.write(framed(hardReset));
  two.write(framed(Buffer.from('38ffffffffffffffff000000000000', 'hex')));
  await until(() => events.length === 2, 'both control packets');
  const first = events.find((e) => e.remote.port === one.localPort)!;
  assert.deepEqual(
    [first.peerId, first.localPort, first.remote.address, first.data],
    [null, port, '127.0.0.1', hardReset],
  );
  // The answer goes on the first client's connection only.
  const reply = Buffer.from('40f6e5d4c3b2a1090801a1b2c3d4e5f6070000000000', 'hex');
  const received: Buffer[] = [];
  one.on('data', (chunk: Buffer) => received.push(chunk));
  two.on('data', () => assert.fail('the other connection got the answer'));
  iface.sendControl('tcp', port, first.remote, reply);
  await until(() => Buffer.concat(received).length === reply.length + 2, 'the framed answer');
  assert.deepEqual(Buffer.concat(received), framed(reply));
  assert.throws(() => iface.sendControl('tcp', port, { address: '127.0.0.1', port: 9 }, reply), {
    code: 'ENOENT',
    message: `no connection from 127.0.0.1:9 waits on TCP port ${port}`,
  });

  // The control plane names the connection it talked to: the peer takes that one, not the oldest.
  const [serverKey, clientKey] = keyPair('AES-256-GCM');
  const second = events.find((e) => e.remote.port === two.localPort)!;
  await iface.newTcpPeer({
    id: 7,
    localPort: port,
    remoteIpv4: '127.0.0.1',
    remotePort: second.remote.port,
    vpnIpv4: '5.5.5.7',
  });
  assert.equal(iface.getPeer(7).remotePort, two.localPort);
  installKey(iface, 7, serverKey);
  const packet = ipv4Packet('5.5.5.7', '5.5.5.1', 'through the adopted connection');
  two.write(framed(sealOne(new KeyContext(clientKey), packet, 7)));
  assert.deepEqual(await tun.written.next(), packet);
  // The listening port outlives unlisten while the peer uses it.
  iface.unlisten('tcp', port);
  const three = await dial(port);
  three.destroy();
  for (const s of [one, two]) s.destroy();
  iface.destroy();
});
