/**
 * Queue management on the transmit path, pure parts: CoDel (src/core/codel.ts), the flow queue
 * (src/core/flow-queue.ts) and the TUN reader on top of it (src/device/tun-reader.ts), which
 * is fed here from a scripted packet source instead of a TUN.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HEADROOM, newBatch, type PacketBatch } from '../src/core/batch.js';
import { Codel } from '../src/core/codel.js';
import { newDropCounters } from '../src/core/drops.js';
import { FlowQueue, type FlowQueueOptions, flowHash, flowQueueProblem } from '../src/core/flow-queue.js';
import { type PacketSource, TunReader } from '../src/device/tun-reader.js';

const OPTIONS: FlowQueueOptions = { slots: 8, bulkBytes: 1 << 20, targetMs: 1, intervalMs: 10 };

/** An IPv4 UDP packet from 10.0.0.1:sport to 10.0.0.2:53, `size` bytes, its last byte `tag`. */
function udp4(sport: number, size = 60, tag = 0): Buffer {
  const p = Buffer.alloc(size);
  p[0] = 0x45;
  p[9] = 17;
  p.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(53, 22);
  p[size - 1] = tag;
  return p;
}

/** A one-packet batch holding `data` at HEADROOM, to push from. */
function single(data: Buffer): PacketBatch {
  const b = newBatch(1, 2048);
  data.copy(b.bufs[0]!, HEADROOM);
  b.offsets[0] = HEADROOM;
  b.sizes[0] = data.length;
  b.count = 1;
  return b;
}

function push(q: FlowQueue, data: Buffer, now = 0): void {
  q.push(single(data), 0, flowHash(data, 0, data.length), now);
}

/** Pops one packet and returns its last byte (the tag), or null when empty. */
function popTag(q: FlowQueue, now = 0): number | null {
  const slot = q.pop(now);
  if (slot < 0) return null;
  const tag = q.bufs[slot]![q.offsets[slot]! + q.sizes[slot]! - 1]!;
  q.release(slot);
  return tag;
}

// ---- CoDel ----------------------------------------------------------------------------------

test('codel: waits a whole interval above target before the first drop', () => {
  const c = new Codel(1, 10);
  assert.equal(c.shouldDrop(5, 100), false, 'first packet above target only starts the clock');
  assert.equal(c.shouldDrop(5, 105), false, 'half an interval later: still a burst');
  assert.equal(c.shouldDrop(5, 110), true, 'a whole interval above target: drop');
  assert.equal(c.isDropping, true);
});

test('codel: drops faster the longer the queue stands, and stops once below target', () => {
  const c = new Codel(1, 10);
  c.shouldDrop(5, 0);
  assert.equal(c.shouldDrop(5, 10), true); // count 1, next drop at 10 + 10/sqrt(1) = 20
  assert.equal(c.shouldDrop(5, 19.9), false);
  assert.equal(c.shouldDrop(5, 20), true); // count 2, next at 20 + 10/sqrt(2) ≈ 27.07
  assert.equal(c.shouldDrop(5, 27), false);
  assert.equal(c.shouldDrop(5, 27.1), true);
  assert.equal(c.shouldDrop(0.5, 28), false, 'below target: the standing queue is gone');
  assert.equal(c.isDropping, false);
});

test('codel: a lone packet is no standing queue, and an empty queue resets the clock', () => {
  const c = new Codel(1, 10);
  c.shouldDrop(5, 0);
  assert.equal(c.shouldDrop(50, 20, false), false, 'one packet left: never dropped');
  c.shouldDrop(5, 30);
  c.empty();
  assert.equal(c.shouldDrop(5, 35), false, 'the clock starts again after the queue ran empty');
  assert.equal(c.shouldDrop(5, 44), false);
  assert.equal(c.shouldDrop(5, 45), true);
});

// ---- flow hash ------------------------------------------------------------------------------

test('flowHash: addresses, protocol and ports; fragments and garbage without ports', () => {
  assert.equal(flowHash(udp4(1000), 0, 60), flowHash(udp4(1000, 200, 7), 0, 200), 'same 5-tuple, same flow');
  assert.notEqual(flowHash(udp4(1000), 0, 60), flowHash(udp4(1001), 0, 60), 'another port, another flow');
  const frag = udp4(1000);
  frag[7] = 1; // fragment offset 8: no ports in this packet
  const frag2 = udp4(2000);
  frag2[7] = 1;
  assert.equal(flowHash(frag, 0, 60), flowHash(frag2, 0, 60), 'fragments hash without ports');
  assert.equal(flowHash(Buffer.from([0x12, 0, 0]), 0, 3), 0, 'not IP: flow 0');
  const at = Buffer.concat([Buffer.alloc(5), udp4(1000)]);
  assert.equal(flowHash(at, 5, 60), flowHash(udp4(1000), 0, 60), 'reads at the offset');
});

// ---- flow queue -----------------------------------------------------------------------------

test('flow queue: a sparse flow goes ahead of bulk, each flow keeps its order', () => {
  const q = new FlowQueue(OPTIONS, 2048);
  push(q, udp4(1000, 60, 1)); // bulk flow, first packet: nothing of its flow queued, so sparse
  push(q, udp4(1000, 60, 2));
  push(q, udp4(1000, 60, 3));
  push(q, udp4(2000, 60, 9)); // a ping-like flow
  assert.equal(q.length, 4);
  assert.deepEqual([popTag(q), popTag(q), popTag(q), popTag(q), popTag(q)], [1, 9, 2, 3, null]);
  assert.equal(q.room, 8, 'every slot released');
});

test('flow queue: packets of one flow never overtake each other (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(-1)), { maxLength: 200 }), (ops) => {
      const q = new FlowQueue({ ...OPTIONS, slots: 16 }, 2048);
      const next = [0, 0, 0, 0];
      const seen: number[][] = [[], [], [], []];
      const pop = () => {
        const slot = q.pop(0);
        if (slot < 0) return;
        const buf = q.bufs[slot]!;
        const o = q.offsets[slot]!;
        seen[buf.readUInt16BE(o + 20) - 1000]!.push(buf[o + 59]!);
        q.release(slot);
      };
      for (const op of ops) {
        if (op < 0 || q.room === 0) pop();
        else push(q, udp4(1000 + op, 60, next[op]!++ & 0xff));
      }
      while (q.length > 0) pop();
      for (let f = 0; f < 4; f++)
        assert.deepEqual(
          seen[f],
          [...seen[f]!].sort((a, b) => a - b),
          `flow ${f} in order`,
        );
    }),
  );
});

test('flow queue: bulk over the byte limit drops the oldest, never sparse', () => {
  const drops = newDropCounters();
  const q = new FlowQueue({ ...OPTIONS, bulkBytes: 2500 }, 2048, drops);
  push(q, udp4(2000, 60, 9)); // sparse
  for (let tag = 1; tag <= 5; tag++) push(q, udp4(1000, 1000, tag)); // 1 sparse, then bulk 2..5
  assert.equal(q.stats.overflowDrops, 2, 'bulk 2..5 is 4000 bytes: 2 dropped to get under 2500');
  assert.equal(drops.queue, 2, 'counted in the interface drops too');
  assert.deepEqual([popTag(q), popTag(q), popTag(q), popTag(q), popTag(q)], [9, 1, 4, 5, null]);
});

test('flow queue: full slots, dropOldestBulk makes room; push into a full queue throws', () => {
  const q = new FlowQueue({ ...OPTIONS, slots: 3 }, 2048);
  push(q, udp4(1000, 60, 1));
  push(q, udp4(1000, 60, 2));
  push(q, udp4(1000, 60, 3));
  assert.equal(q.room, 0);
  assert.throws(() => push(q, udp4(1000, 60, 4)), /flow queue is full/);
  assert.equal(q.dropOldestBulk(), true);
  push(q, udp4(1000, 60, 4));
  assert.deepEqual([popTag(q), popTag(q), popTag(q)], [1, 3, 4]);
  assert.equal(q.dropOldestBulk(), false, 'no bulk left to drop');
});

test('flow queue: CoDel drops bulk that stood in the queue too long', () => {
  const drops = newDropCounters();
  const q = new FlowQueue({ ...OPTIONS, slots: 64 }, 2048, drops);
  let now = 0;
  let tag = 0;
  // Two packets in for each one out, each waiting ~5 ms: a standing queue.
  for (let i = 0; i < 60; i++) {
    push(q, udp4(1000, 1000, tag++ & 0xff), now);
    if (q.room < 2) {
      popTag(q, now);
      popTag(q, now);
    }
    push(q, udp4(1000, 1000, tag++ & 0xff), now);
    if (now >= 5) popTag(q, now);
    now += 0.5;
  }
  assert.ok(q.stats.codelDrops > 0, 'CoDel dropped');
  assert.equal(drops.queue, q.stats.codelDrops + q.stats.overflowDrops);
});

test('flow queue: options are checked, naming the field', () => {
  assert.equal(flowQueueProblem(OPTIONS), null);
  assert.match(flowQueueProblem({ ...OPTIONS, slots: 0 })!, /^slots must be/);
  assert.match(flowQueueProblem({ ...OPTIONS, bulkBytes: 1.5 })!, /^bulkBytes must be/);
  assert.match(flowQueueProblem({ ...OPTIONS, targetMs: 0 })!, /^targetMs must be/);
  assert.match(flowQueueProblem({ ...OPTIONS, intervalMs: 0.5 })!, /^intervalMs must be at least targetMs/);
  assert.throws(() => new FlowQueue({ ...OPTIONS, slots: -1 }, 2048), RangeError);
});

// ---- TUN reader -----------------------------------------------------------------------------

/** A packet source that hands out scripted packets, at most `max` per read, like a TUN ring. */
class Script implements PacketSource {
  readonly ring: Buffer[] = [];
  reads = 0;

  read(batch: PacketBatch, max: number): number {
    this.reads++;
    let n = 0;
    while (n < max && this.ring.length > 0) {
      const p = this.ring.shift()!;
      p.copy(batch.bufs[n]!, batch.offsets[n]!);
      batch.sizes[n] = p.length;
      n++;
    }
    batch.count = n;
    return n;
  }
}

function tagsOf(batch: PacketBatch): number[] {
  const tags: number[] = [];
  for (let i = 0; i < batch.count; i++) tags.push(batch.bufs[i]![batch.offsets[i]! + batch.sizes[i]! - 1]!);
  return tags;
}

test('tun reader: drains the ring, and a sparse packet behind bulk in the ring leaves first', () => {
  const source = new Script();
  const reader = new TunReader(source, newDropCounters(), false, { ...OPTIONS, slots: 64 });
  for (let tag = 1; tag <= 40; tag++) source.ring.push(udp4(1000, 100, tag));
  source.ring.push(udp4(2000, 60, 99)); // a ping behind 40 bulk packets in the ring
  const out = newBatch(16, 65536 + 128);
  assert.equal(reader.read(out, 0), 16);
  assert.deepEqual(
    tagsOf(out),
    [1, 99, ...Array.from({ length: 14 }, (_, i) => i + 2)],
    "the sparse packets first: the bulk flow's first one and the ping",
  );
  assert.equal(source.ring.length, 0, 'the whole ring was drained into the queue');
  assert.equal(reader.pending, true);
  assert.equal(out.offsets[0], HEADROOM, 'packets keep their headroom');
  assert.equal(reader.read(out, 0), 16);
  assert.equal(reader.read(out, 0), 9);
  assert.deepEqual(tagsOf(out), [32, 33, 34, 35, 36, 37, 38, 39, 40]);
  assert.equal(reader.pending, false);
  assert.equal(reader.read(out, 0), 0);
});

test('tun reader: when the queue is full, the oldest bulk makes room for what the ring holds', () => {
  const source = new Script();
  const drops = newDropCounters();
  const reader = new TunReader(source, drops, false, { ...OPTIONS, slots: 20 });
  source.ring.push(udp4(1000, 100, 0));
  for (let tag = 1; tag <= 30; tag++) source.ring.push(udp4(1000, 100, tag));
  source.ring.push(udp4(2000, 60, 99));
  const out = newBatch(64, 65536 + 128);
  reader.read(out, 0);
  assert.equal(source.ring.length, 0, 'drained despite the full queue');
  assert.ok(drops.queue > 0, 'bulk dropped to make room');
  assert.ok(tagsOf(out).includes(99), 'the ping got through');
});

test('tun reader: a full queue takes one more read from the ring, not the whole ring, so a flood is not read only to be dropped', () => {
  const source = new Script();
  const drops = newDropCounters();
  const reader = new TunReader(source, drops, false, { ...OPTIONS, slots: 20 });
  for (let tag = 1; tag <= 100; tag++) source.ring.push(udp4(1000, 100, tag));
  const out = newBatch(64, 65536 + 128);
  assert.equal(reader.read(out, 0), 20);
  // 16 fit; the queue is then full, so one more read of 16 pushes the 12 oldest out.
  assert.equal(source.ring.length, 100 - 32, 'two reads of 16 taken from the ring');
  assert.equal(drops.queue, 12);
  assert.deepEqual(tagsOf(out), [1, ...Array.from({ length: 19 }, (_, i) => i + 14)], 'the oldest pushed out');
});
