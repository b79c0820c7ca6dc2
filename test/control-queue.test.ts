/**
 * The bounded queue in front of the control plane (src/device/control-queue.ts): unauthenticated
 * control packets can neither grow memory nor take every turn of the event loop, and each one
 * pushed out is counted. Time is a ManualClock, so the rate is checked without waiting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ControlQueue, type ControlQueueOptions } from '../src/device/control-queue.js';
import { ManualClock } from '../src/edge/memory.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function queue(options: Partial<ControlQueueOptions>) {
  const clock = new ManualClock();
  const up: number[] = [];
  let dropped = 0;
  const q = new ControlQueue<{ data: Buffer; n: number }>(
    { slots: 8, bytes: 1 << 20, rate: 100, burst: 4, ...options },
    clock,
    (item) => up.push(item.n),
    (count) => {
      dropped += count;
    },
  );
  const push = (n: number, size = 10) => q.push({ data: Buffer.alloc(size), n });
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
