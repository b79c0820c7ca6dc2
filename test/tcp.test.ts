/** OpenVPN over TCP: stream framing (pure) and TcpLink / TcpListener over loopback (no root). */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DROPPED, HEADROOM, newBatch, type PacketBatch, packetView, pushPacket } from '../src/core/batch.js';
import { ENDPOINT_SIZE, readEndpoint } from '../src/core/endpoint.js';
import {
  framedLength,
  frameRange,
  LENGTH_SIZE,
  MAX_STREAM_PACKET,
  MIN_STREAM_PACKET,
  StreamDeframer,
} from '../src/core/tcp-framing.js';
import { TCP_SEND_QUEUE_LIMIT, type TcpCloseReason, TcpLink, TcpListener } from '../src/device/tcp-link.js';

const CAPACITY = HEADROOM + 2048;

/** A packet whose bytes say which one it is, so order and content are both checked. */
function packet(index: number, size: number): Buffer {
  const p = Buffer.alloc(size);
  for (let i = 0; i < size; i++) p[i] = (index * 7 + i) & 0xff;
  return p;
}

function framed(packets: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of packets) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(p.length);
    parts.push(len, p);
  }
  return Buffer.concat(parts);
}

/** Everything a deframer yields for these chunks, drained into batches of batchSize. */
function deframeAll(chunks: Buffer[], maxPacket = 2048, batchSize = 128): Buffer[] {
  const deframer = new StreamDeframer(maxPacket);
  const batch = newBatch(batchSize, CAPACITY);
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    assert.equal(deframer.push(chunk), true);
    for (;;) {
      batch.count = 0;
      const n = deframer.drain(batch);
      if (n === 0) break;
      assert.equal(n, batch.count);
      for (let i = 0; i < n; i++) {
        assert.equal(batch.offsets[i], HEADROOM);
        out.push(Buffer.from(packetView(batch, i)));
      }
    }
  }
  return out;
}

function batchOf(packets: Buffer[]): PacketBatch {
  const batch = newBatch(Math.max(1, packets.length), CAPACITY);
  for (const p of packets) pushPacket(batch, p);
  return batch;
}

describe('StreamDeframer', () => {
  const packets = [4, 5, 100, 1400, 2048, 64].map((size, i) => packet(i, size));

  test('round trip: one chunk holding several packets', () => {
    assert.deepEqual(deframeAll([framed(packets)]), packets);
  });

  test('one byte at a time', () => {
    const stream = framed(packets);
    const chunks = [...stream].map((b) => Buffer.from([b]));
    assert.deepEqual(deframeAll(chunks), packets);
  });

  test('300 packets in one chunk come out over several full batches, in order', () => {
    const many = Array.from({ length: 300 }, (_, i) => packet(i, 40 + (i % 50)));
    const deframer = new StreamDeframer(2048);
    const batch = newBatch(128, CAPACITY);
    assert.equal(deframer.push(framed(many)), true);
    const counts: number[] = [];
    const out: Buffer[] = [];
    for (;;) {
      batch.count = 0;
      const n = deframer.drain(batch);
      if (n === 0) break;
      counts.push(n);
      for (let i = 0; i < n; i++) out.push(Buffer.from(packetView(batch, i)));
    }
    assert.deepEqual(counts, [128, 128, 44]);
    assert.deepEqual(out, many);
  });

  test('drain fills from batch.count on and stops when the batch is full', () => {
    const deframer = new StreamDeframer(2048);
    const batch = newBatch(4, CAPACITY);
    pushPacket(batch, packet(99, 10));
    deframer.push(framed(packets));
    assert.equal(deframer.drain(batch), 3);
    assert.equal(batch.count, 4);
    assert.deepEqual(packetView(batch, 0), packet(99, 10));
    assert.deepEqual(packetView(batch, 1), packets[0]);
    assert.equal(deframer.drain(batch), 0, 'a full batch takes nothing');
  });

  test('a packet split across many chunks and pushes without a drain in between', () => {
    const stream = framed(packets);
    const deframer = new StreamDeframer(2048);
    for (let at = 0; at < stream.length; at += 300) assert.equal(deframer.push(stream.subarray(at, at + 300)), true);
    const batch = newBatch(128, CAPACITY);
    assert.equal(deframer.drain(batch), packets.length);
    for (let i = 0; i < packets.length; i++) assert.deepEqual(packetView(batch, i), packets[i]);
  });

  test('what waits for the rest of a frame is what arrived, not what its length prefix promises', () => {
    const deframer = new StreamDeframer(MAX_STREAM_PACKET);
    assert.equal(deframer.reservedBytes, 0, 'a connection that sent nothing holds no buffer');
    const big = packet(7, MAX_STREAM_PACKET);
    const stream = framed([big]);
    const batch = newBatch(1, MAX_STREAM_PACKET + 64);
    assert.equal(deframer.push(stream.subarray(0, 12)), true);
    assert.equal(deframer.drain(batch), 0);
    assert.ok(deframer.reservedBytes <= 2048, `a prefix of 65535 and 10 bytes hold ${deframer.reservedBytes}`);
    for (let at = 12; at < stream.length; at += 5000) {
      assert.equal(deframer.push(stream.subarray(at, at + 5000)), true);
      deframer.drain(batch);
    }
    assert.equal(batch.count, 1);
    assert.deepEqual(packetView(batch, 0), big, 'grown piece by piece, the frame comes out whole');
    assert.ok(deframer.reservedBytes <= 2 + MAX_STREAM_PACKET, 'never more than one whole frame');
  });

  for (const [name, length, max] of [
    ['length 0', 0, 2048],
    ['length 1 (below 2: upstream aborts the stream)', 1, 2048],
    [`length ${MIN_STREAM_PACKET - 1} (no room for the opcode word)`, MIN_STREAM_PACKET - 1, 2048],
    ['length above maxPacket', 2049, 2048],
  ] as const) {
    test(`${name} is refused, for good`, () => {
      const deframer = new StreamDeframer(max);
      const bad = Buffer.alloc(2);
      bad.writeUInt16BE(length);
      const stream = Buffer.concat([framed(packets.slice(0, 2)), bad, framed(packets.slice(2))]);
      assert.equal(deframer.push(stream), false);
      assert.equal(deframer.invalidLength, length);
      assert.equal(deframer.push(framed(packets)), false, 'no input after a bad length');
      const batch = newBatch(128, CAPACITY);
      assert.equal(deframer.drain(batch), 2, 'the packets before it are still good');
      assert.deepEqual(packetView(batch, 1), packets[1]);
      assert.equal(deframer.drain(batch), 0, 'nothing after it');
    });
  }

  test('a bad length split between two chunks is refused on the second', () => {
    const deframer = new StreamDeframer(100);
    const stream = Buffer.concat([framed([packet(0, 10)]), Buffer.from([0x01, 0x00])]); // 256 > 100
    assert.equal(deframer.push(stream.subarray(0, stream.length - 1)), true);
    assert.equal(deframer.push(stream.subarray(stream.length - 1)), false);
    assert.equal(deframer.invalidLength, 256);
    const batch = newBatch(4, CAPACITY);
    assert.equal(deframer.drain(batch), 1);
    assert.equal(deframer.drain(batch), 0);
  });

  test('maxPacket must fit the 16-bit length', () => {
    assert.throws(
      () => new StreamDeframer(MAX_STREAM_PACKET + 1),
      /maxPacket must be an integer from 4 to 65535, got 65536/,
    );
    assert.throws(() => new StreamDeframer(3), /got 3/);
    assert.equal(new StreamDeframer(MAX_STREAM_PACKET).maxPacket, MAX_STREAM_PACKET);
  });

  test('a batch too small for a packet is a clear error', () => {
    const deframer = new StreamDeframer(2048);
    deframer.push(framed([packet(0, 500)]));
    assert.throws(() => deframer.drain(newBatch(1, HEADROOM + 100)), /cannot hold a 500-byte packet.*larger capacity/);
  });

  test('property: any split of a framed stream yields the same packets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: MIN_STREAM_PACKET, max: 1500 }), { minLength: 0, maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.integer({ min: 1, max: 8 }),
        (sizes, cuts, batchSize) => {
          const pkts = sizes.map((size, i) => packet(i, size));
          const stream = framed(pkts);
          const points = [...new Set(cuts.map((c) => (stream.length === 0 ? 0 : c % stream.length)))].sort(
            (a, b) => a - b,
          );
          const chunks: Buffer[] = [];
          let from = 0;
          for (const p of [...points, stream.length]) {
            chunks.push(stream.subarray(from, p));
            from = p;
          }
          assert.deepEqual(deframeAll(chunks, 1500, batchSize), pkts);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('frameRange', () => {
  test('writes each packet behind its big-endian length, and only the range asked for', () => {
    const batch = batchOf([Buffer.from([1, 2, 3, 4]), Buffer.from([5, 6, 7, 8, 9]), packet(2, 300)]);
    const out = frameRange(batch, 0, 2);
    assert.deepEqual(out, Buffer.from([0, 4, 1, 2, 3, 4, 0, 5, 5, 6, 7, 8, 9]));
    const third = frameRange(batch, 2, 3);
    assert.deepEqual(third.subarray(0, 2), Buffer.from([0x01, 0x2c]));
    assert.deepEqual(third.subarray(2), packet(2, 300));
    assert.equal(framedLength(batch, 0, 3), 3 * LENGTH_SIZE + 4 + 5 + 300);
    assert.deepEqual(frameRange(batch, 1, 1), Buffer.alloc(0));
  });

  test('leaves out packets that cannot be framed and leaves the batch untouched', () => {
    const batch = batchOf([
      Buffer.from([1, 2, 3, 4]),
      Buffer.from([9, 9, 9, 9]),
      Buffer.from([1, 2]),
      Buffer.from([5, 6, 7, 8]),
    ]);
    batch.sizes[1] = DROPPED;
    const before = Buffer.from(batch.bufs[0]!.subarray(0, HEADROOM + 4));
    assert.deepEqual(frameRange(batch, 0, 4), Buffer.from([0, 4, 1, 2, 3, 4, 0, 4, 5, 6, 7, 8]));
    assert.deepEqual(batch.bufs[0]!.subarray(0, HEADROOM + 4), before);
  });

  test('into: writes into the given buffer and returns the used part', () => {
    const batch = batchOf([packet(0, 100), packet(1, 50)]);
    const into = Buffer.alloc(1000, 0xee);
    const out = frameRange(batch, 0, 2, into);
    assert.equal(out.buffer, into.buffer);
    assert.equal(out.length, 154);
    assert.deepEqual(out, frameRange(batch, 0, 2));
    assert.equal(into[154], 0xee);
    assert.throws(() => frameRange(batch, 0, 2, Buffer.alloc(153)), /needs 154 bytes, the buffer given has 153/);
    assert.throws(() => frameRange(batch, 1, 3), /packet range 1\.\.3 is outside the batch's 2 packets/);
  });

  test('the deframer reads back what frameRange writes', () => {
    const pkts = Array.from({ length: 128 }, (_, i) => packet(i, 1400));
    assert.deepEqual(deframeAll([frameRange(batchOf(pkts), 0, 128)]), pkts);
  });
});

// ---- TcpLink / TcpListener over loopback ----

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function within<T>(promise: Promise<T>, ms = 5000, what = 'event'): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A listener and the link it accepted for one client connection. */
async function linkedPair(): Promise<{ listener: TcpListener; server: TcpLink; client: TcpLink }> {
  const listener = await TcpListener.open(0);
  const accepted = deferred<TcpLink>();
  listener.onConnection = accepted.resolve;
  const client = await TcpLink.connect({ address: '127.0.0.1', port: listener.port });
  const server = await within(accepted.promise);
  return { listener, server, client };
}

/** A raw socket connected to a fresh listener, and the link accepted for it. */
async function rawPeer(): Promise<{ listener: TcpListener; link: TcpLink; raw: net.Socket }> {
  const listener = await TcpListener.open(0);
  const accepted = deferred<TcpLink>();
  listener.onConnection = accepted.resolve;
  const raw = net.connect({ host: '127.0.0.1', port: listener.port });
  raw.on('error', () => {});
  const link = await within(accepted.promise);
  return { listener, link, raw };
}

function closeNotice(link: TcpLink): Promise<{ reason: TcpCloseReason; detail: string; calls: () => number }> {
  let calls = 0;
  const first = deferred<{ reason: TcpCloseReason; detail: string; calls: () => number }>();
  link.onClose = (reason, detail) => {
    calls++;
    first.resolve({ reason, detail, calls: () => calls });
  };
  return within(first.promise, 5000, 'onClose');
}

const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('TcpLink', () => {
  test('500 packets from one side arrive at the other, all and in order', async () => {
    const { listener, server, client } = await linkedPair();
    try {
      const sent = Array.from({ length: 500 }, (_, i) => packet(i, 20 + ((i * 37) % 1400)));
      const got: Buffer[] = [];
      const all = deferred<void>();
      server.onPackets = (batch) => {
        for (let i = 0; i < batch.count; i++) got.push(Buffer.from(packetView(batch, i)));
        if (got.length >= sent.length) all.resolve();
      };
      const batch = newBatch(128, CAPACITY);
      for (let at = 0; at < sent.length; at += 128) {
        batch.count = 0;
        for (const p of sent.slice(at, at + 128)) pushPacket(batch, p);
        assert.equal(client.send(batch, 0, batch.count), batch.count);
      }
      await within(all.promise, 5000, 'all packets');
      assert.deepEqual(got, sent);
    } finally {
      client.close();
      server.close();
      listener.close();
    }
  });

  test('endpoint: the remote of an IPv4 client on the dual-stack listener reads as IPv4, with the local address', async () => {
    const { listener, server, client } = await linkedPair();
    try {
      assert.equal(server.endpoint.length, ENDPOINT_SIZE);
      const ep = readEndpoint(server.endpoint, 0);
      assert.equal(ep.family, 4);
      assert.equal(ep.address, '127.0.0.1');
      assert.equal(ep.local, '127.0.0.1');
      assert.deepEqual(server.remote, ep);
      assert.equal(client.remote.port, listener.port);
      assert.equal(client.remote.address, '127.0.0.1');
    } finally {
      client.close();
      server.close();
      listener.close();
    }
  });

  test('an invalid length from the peer: TRANSPORT_ERROR, the good packets before it delivered, the socket closed', async () => {
    const { listener, link, raw } = await rawPeer();
    try {
      const got: Buffer[] = [];
      link.onPackets = (batch) => {
        for (let i = 0; i < batch.count; i++) got.push(Buffer.from(packetView(batch, i)));
      };
      const notice = closeNotice(link);
      const rawClosed = new Promise<void>((r) => raw.once('close', () => r()));
      raw.write(Buffer.concat([framed([packet(1, 10)]), Buffer.from([0, 0]), framed([packet(2, 10)])]));
      const { reason, detail, calls } = await notice;
      assert.equal(reason, 'TRANSPORT_ERROR');
      assert.equal(detail, 'invalid packet length 0');
      assert.deepEqual(got, [packet(1, 10)]);
      await within(rawClosed, 5000, 'close of the raw peer');
      assert.equal(link.isOpen, false);
      await settle();
      assert.equal(calls(), 1, 'onClose exactly once');
      assert.equal(link.send(batchOf([packet(3, 10)]), 0, 1), 0, 'a closed link takes nothing');
    } finally {
      raw.destroy();
      listener.close();
    }
  });

  test('the peer ending the connection: TRANSPORT_DISCONNECT, once', async () => {
    const { listener, link, raw } = await rawPeer();
    try {
      const notice = closeNotice(link);
      raw.end();
      const { reason, detail, calls } = await notice;
      assert.equal(reason, 'TRANSPORT_DISCONNECT');
      assert.equal(detail, 'peer closed the connection');
      await settle();
      assert.equal(calls(), 1);
    } finally {
      raw.destroy();
      listener.close();
    }
  });

  test('the peer resetting the connection: TRANSPORT_DISCONNECT', async () => {
    const { listener, link, raw } = await rawPeer();
    try {
      const notice = closeNotice(link);
      raw.resetAndDestroy();
      const { reason, detail, calls } = await notice;
      assert.equal(reason, 'TRANSPORT_DISCONNECT');
      assert.equal(detail, 'connection reset by peer (ECONNRESET)');
      await settle();
      assert.equal(calls(), 1);
    } finally {
      listener.close();
    }
  });

  test('close(): no notice on this side, TRANSPORT_DISCONNECT on the other', async () => {
    const { listener, server, client } = await linkedPair();
    try {
      let clientNotices = 0;
      client.onClose = () => clientNotices++;
      const serverNotice = closeNotice(server);
      client.close();
      client.close();
      assert.equal((await serverNotice).reason, 'TRANSPORT_DISCONNECT');
      await settle();
      assert.equal(clientNotices, 0);
      assert.equal(client.isOpen, false);
    } finally {
      server.close();
      listener.close();
    }
  });

  test('send refuses packets (returns 0) once the send queue is over the bound while the peer does not read', async () => {
    const listener = net.createServer((socket) => socket.pause());
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const port = (listener.address() as net.AddressInfo).port;
    const link = await TcpLink.connect({ address: '127.0.0.1', port });
    try {
      const batch = batchOf(Array.from({ length: 128 }, (_, i) => packet(i, 1400)));
      let accepted = 0;
      let refusedAt = -1;
      // 64 MiB at most: far beyond the kernel's loopback buffers plus the 4 MiB bound.
      for (let round = 0; round < 360; round++) {
        const n = link.send(batch, 0, batch.count);
        if (n === 0) {
          refusedAt = round;
          break;
        }
        assert.equal(n, 128);
        accepted += n;
        if (round % 8 === 7) await settle(5); // let libuv hand what it can to the kernel
      }
      assert.ok(refusedAt > 0, `send never refused after ${accepted} packets`);
      assert.ok(link.queuedBytes > TCP_SEND_QUEUE_LIMIT);
      assert.ok(
        link.queuedBytes < TCP_SEND_QUEUE_LIMIT + 2 * framedLength(batch, 0, 128),
        'the queue stops growing at the bound',
      );
    } finally {
      link.close();
      listener.close();
    }
  });

  test('send counts only the packets it can frame', async () => {
    const { listener, server, client } = await linkedPair();
    try {
      const batch = batchOf([packet(0, 100), packet(1, 100), packet(2, 100)]);
      batch.sizes[1] = DROPPED;
      const got = deferred<number[]>();
      server.onPackets = (b) => got.resolve(Array.from(b.sizes.subarray(0, b.count)));
      assert.equal(client.send(batch, 0, 3), 2);
      assert.deepEqual(await within(got.promise), [100, 100]);
    } finally {
      client.close();
      server.close();
      listener.close();
    }
  });

  test('connecting to a closed port rejects with ECONNREFUSED', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await assert.rejects(TcpLink.connect({ address: '127.0.0.1', port }), (err: Error) => {
      assert.match(err.message, new RegExp(`TCP connect to 127\\.0\\.0\\.1 port ${port} failed: .*ECONNREFUSED`));
      return true;
    });
  });
});

describe('TcpListener', () => {
  test('close() stops accepting and keeps the links it handed out', async () => {
    const { listener, server, client } = await linkedPair();
    try {
      listener.close();
      await assert.rejects(TcpLink.connect({ address: '127.0.0.1', port: listener.port }), /ECONNREFUSED/);
      const got = deferred<Buffer>();
      server.onPackets = (b) => got.resolve(Buffer.from(packetView(b, 0)));
      assert.equal(client.send(batchOf([packet(5, 64)]), 0, 1), 1);
      assert.deepEqual(await within(got.promise), packet(5, 64));
    } finally {
      client.close();
      server.close();
    }
  });

  test('accepts IPv6 clients too when the host has IPv6', async (t) => {
    const listener = await TcpListener.open(0);
    if (listener.address !== '::') {
      listener.close();
      t.skip('no IPv6 on this host');
      return;
    }
    const accepted = deferred<TcpLink>();
    listener.onConnection = accepted.resolve;
    let client: TcpLink;
    try {
      client = await TcpLink.connect({ address: '::1', port: listener.port });
    } catch {
      listener.close();
      t.skip('::1 unreachable');
      return;
    }
    const server = await within(accepted.promise);
    assert.equal(server.remote.family, 6);
    assert.equal(server.remote.address, '::1');
    assert.equal(server.remote.local, '::1');
    client.close();
    server.close();
    listener.close();
  });

  test('a port in use is a clear error', async () => {
    const first = await TcpListener.open(0);
    try {
      await assert.rejects(TcpListener.open(first.port), /cannot listen on TCP port \d+ .*EADDRINUSE/);
    } finally {
      first.close();
    }
  });
});
