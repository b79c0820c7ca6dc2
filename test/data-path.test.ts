/**
 * The whole data path without root: interfaces joined by the in-memory edges (src/edge/memory.ts)
 * in one process, so transmit, receive, routing, float, multihome, keepalive, keys, replay and
 * control packets are checked on bytes, counters and events, with time moved by hand.
 *
 * Nothing here sleeps. A test waits for the thing it expects (a packet written to a TUN, a
 * datagram on a socket, an event, a counter) for at most TURNS turns of the event loop, which
 * is where the fakes' readiness callbacks run; a packet that never comes fails the test instead
 * of hanging it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newBatch, pushPacket } from '../src/core/batch.js';
import { newEndpoints, readEndpoint, writeEndpoint } from '../src/core/endpoint.js';
import { parseIp } from '../src/core/ip.js';
import { MemoryNetwork } from '../src/edge/memory.js';

// ---- waiting without sleeping ---------------------------------------------------------------

/** More than any hop needs: inject → seal → deliver → open → write takes two or three turns. */
const TURNS = 50;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** `promise`, if it settles within TURNS turns of the event loop; else a failure naming `what`. */
async function soon<T>(promise: Promise<T>, what: string): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  for (let i = 0; i < TURNS && !settled; i++) await turn();
  if (!settled) assert.fail(`${what}: nothing after ${TURNS} turns of the event loop`);
  return watched;
}

const ip = (text: string): Uint8Array => parseIp(text)!.bytes;

// ---- the fakes ---------------------------------------------------------------------------------

test('fakes: the clock runs due timers in deadline order inside advance(), and only there', () => {
  const net = new MemoryNetwork();
  const ran: string[] = [];
  const fast = net.clock.every(250, () => ran.push(`fast@${net.clock.now()}`));
  net.clock.every(400, () => ran.push(`slow@${net.clock.now()}`));
  net.clock.advance(249);
  assert.deepEqual(ran, []);
  net.clock.advance(551);
  assert.deepEqual(ran, ['fast@250', 'slow@400', 'fast@500', 'fast@750', 'slow@800']);
  assert.equal(net.clock.now(), 800);
  fast.cancel();
  net.clock.advance(400);
  assert.deepEqual(ran.slice(5), ['slow@1200']);
});

test('fakes: a datagram arrives with the endpoint the kernel would fill; nobody listening counts as lost', async () => {
  const net = new MemoryNetwork();
  const A = net.host('10.0.0.1');
  const B = net.host('10.0.0.2', '10.0.0.22');
  const sender = A.openUdp(0);
  const receiver = B.openUdp(7000);
  sender.sendTo(Buffer.from('hi'), { address: '10.0.0.22', port: 7000 });
  const got = await soon(receiver.next(), 'datagram to the second address');
  assert.deepEqual(got.data, Buffer.from('hi'));
  assert.deepEqual(got.from, { address: '10.0.0.1', port: sender.port, family: 4, local: '10.0.0.22', ifindex: 1 });
  sender.sendTo(Buffer.from('x'), { address: '10.0.0.2', port: 7001 });
  sender.sendTo(Buffer.from('x'), { address: '10.0.0.3', port: 7000 });
  assert.equal(net.lost, 2);
});

test('fakes: a pinned source the host no longer has is forgotten in the slot and the host picks one, as the shim does', async () => {
  const net = new MemoryNetwork();
  const A = net.host('10.0.0.1', '10.0.0.11');
  const receiver = net.host('10.0.0.2').openUdp(7000);
  const sender = A.openUdp(6000);
  const batch = newBatch(1);
  const endpoints = newEndpoints(1);
  pushPacket(batch, Buffer.from('pinned'));
  writeEndpoint(endpoints, 0, { address: '10.0.0.2', port: 7000, local: '10.0.0.11' });
  assert.equal(sender.send(batch, endpoints), 1);
  assert.equal((await soon(receiver.next(), 'sent from the pinned address')).from.address, '10.0.0.11');
  A.setAddress('10.0.0.11', false);
  assert.equal(sender.send(batch, endpoints), 1);
  assert.equal((await soon(receiver.next(), 'sent from the address left')).from.address, '10.0.0.1');
  assert.deepEqual(readEndpoint(endpoints, 0), { address: '10.0.0.2', port: 7000, family: 4, ifindex: 0 });
});

test('fakes: routes set before the watcher first reports are what it reports, not the empty list it started with', async () => {
  const net = new MemoryNetwork();
  const host = net.host('10.0.0.1');
  const seen: number[] = [];
  host.edges.watchRoutes(
    'tun0',
    (routes) => seen.push(routes.length),
    (error) => assert.fail(error),
  );
  host.setRoutes('tun0', [{ family: 4, dst: ip('11.11.11.0'), prefixLen: 24, gateway: ip('5.5.5.2') }]);
  await turn();
  assert.deepEqual(seen, [1, 1]);
});
