/**
 * The bounded queue in front of the control plane (src/device/control-queue.ts): unauthenticated
 * control packets can neither grow memory nor take every turn of the event loop, and each one
 * pushed out is counted. Time is a ManualClock, so the rate is checked without waiting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENDPOINT_SIZE, type Endpoint, writeEndpoint } from '../src/core/endpoint.js';
import { ControlQueue, type ControlQueueOptions } from '../src/device/control-queue.js';
import { ManualClock } from '../src/edge/memory.js';

const REMOTE: Endpoint = { address: '192.0.2.1', port: 1194, family: 4, ifindex: 0 };

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function queue(options: Partial<ControlQueueOptions>) {
  const clock = new ManualClock();
  const up: number[] = [];
  let dropped = 0;
  const q = new ControlQueue(
    { slots: 8, bytes: 1 << 20, rate: 100, burst: 4, ...options },
    clock,
    (peerId, _localPort, _remote, data) => {
      assert.equal(data.length > 0 ? data[0] : peerId! & 0xff, peerId! & 0xff, 'the bytes pushed with it');
      up.push(peerId!);
    },
    (count) => {
      dropped += count;
    },
  );
  const push = (n: number, size = 10) => q.push(n, 1194, REMOTE, Buffer.alloc(size, n & 0xff));
  return { clock, q, up, push, dropped: () => dropped };
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

test('control queue: a burst goes up at once, the rest at the rate; the newest wait, the oldest are pushed out', async () => {
  const { clock, q, up, push, dropped } = queue({});
  for (let n = 0; n < 20; n++) push(n);
  assert.equal(dropped(), 12, 'eight slots: the twelve oldest pushed out');
  assert.equal(q.length, 8);
  await turns(5);
  assert.deepEqual(up, [12, 13, 14, 15], 'the burst of four, oldest first');
  clock.advance(20);
  await turns(5);
  assert.deepEqual(up.slice(4), [16, 17], 'two more tokens after 20 ms at 100/s');
  clock.advance(1000);
  await turns(5);
  assert.deepEqual(up.slice(6), [18, 19]);
  assert.equal(q.length, 0);
  q.stop();
});

test('control queue: a byte limit pushes out the oldest too, and stop() drops everything', async () => {
  const { q, up, push, dropped } = queue({ bytes: 100, burst: 100 });
  for (let n = 0; n < 5; n++) push(n, 40);
  assert.equal(dropped(), 3, 'only two 40-byte packets fit in 100 bytes');
  await turns(3);
  assert.deepEqual(up, [3, 4]);
  push(5);
  q.stop();
  await turns(3);
  assert.deepEqual(up, [3, 4], 'nothing goes up after stop');
  push(6);
  assert.equal(q.length, 0, 'nothing queues after stop');
});

test('control queue: waiting packets are bytes in one ring; what goes up is a copy, with the sender decoded from its slot', async () => {
  const up: { peerId: number | null; port: number; remote: Endpoint; data: Buffer }[] = [];
  let dropped = 0;
  const q = new ControlQueue(
    { slots: 4, bytes: 100, rate: 1000, burst: 1000 },
    new ManualClock(),
    (peerId, port, remote, data) => up.push({ peerId, port, remote, data }),
    (count) => {
      dropped += count;
    },
  );
  const endpoints = Buffer.alloc(3 * ENDPOINT_SIZE);
  writeEndpoint(endpoints, 2, { address: '2001:db8::7', port: 5000, local: '2001:db8::1' });
  const batch = Buffer.alloc(60, 0xab);
  // 30 + 30 + 30 bytes, then 30 more wrap to the start once the first is pushed out.
  for (let n = 0; n < 4; n++) q.pushFromSlot(n === 0 ? null : n, 1194 + n, endpoints, 2, batch.subarray(0, 30));
  assert.equal(dropped, 1, 'the fourth 30-byte packet pushed the first out of 100 bytes');
  batch.fill(0); // the receive batch is reused: the queue must have copied
  q.push(9, 1, REMOTE, Buffer.alloc(101));
  assert.equal(dropped, 2, 'a packet larger than the ring is dropped, nothing else');
  await turns(3);
  assert.deepEqual(
    up.map((u) => [u.peerId, u.port, u.data.length, u.data.every((b) => b === 0xab)]),
    [
      [1, 1195, 30, true],
      [2, 1196, 30, true],
      [3, 1197, 30, true],
    ],
  );
  assert.equal(up[0]!.remote.address, '2001:db8::7');
  assert.equal(up[0]!.remote.port, 5000);
  assert.equal(up[0]!.remote.local, '2001:db8::1');
  assert.equal(q.length, 0);
  q.stop();
});

test('control queue: a steady flood through a full queue leaves every packet it hands up intact', async () => {
  const up: Buffer[] = [];
  const clock = new ManualClock();
  const q = new ControlQueue(
    { slots: 16, bytes: 1000, rate: 1e9, burst: 7 },
    clock,
    (_p, _l, _r, data) => up.push(data),
    () => {},
  );
  for (let n = 0; n < 2000; n++) {
    const size = 2 + ((n * 37) % 150);
    const packet = Buffer.alloc(size, n & 0xff);
    packet.writeUInt16BE(n, 0);
    q.push(n, 1, REMOTE, packet);
    if (n % 50 === 0) {
      clock.advance(1);
      await turn();
    }
  }
  await turns(5);
  assert.ok(up.length > 100, `handed up ${up.length}`);
  for (const data of up) {
    const n = data.readUInt16BE(0);
    assert.equal(data.length, 2 + ((n * 37) % 150), `packet ${n}: its length`);
    assert.ok(
      data.subarray(2).every((b) => b === (n & 0xff)),
      `packet ${n}: its bytes`,
    );
  }
});
