/**
 * The two AEAD backends against each other, and the native key handle's lifetime: for random
 * keys, nonce tails, packet-ids, sizes and tampering both produce the same wire bytes and the
 * same accept/reject; a deleted key refuses further use; creating and deleting many keys leaves
 * the process's memory flat; a descriptor pointing outside its buffer is refused before any
 * byte is touched.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  AEAD_AUTH_FAILED,
  type AeadBackend,
  type CipherAlg,
  cipherInfo,
  DROPPED,
  type KeyConfig,
  KeyContext,
  KeySlot,
  KeySlots,
  newBatch,
  newDropCounters,
  openRange,
  PacketIdSender,
  sealRange,
} from '../src/core/index.js';
import { aeadBackend, nativeAead } from '../src/edge/aead.js';
import { native } from '../src/edge/native.js';

const AEADS: CipherAlg[] = ['AES-128-GCM', 'AES-192-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305'];
const BACKENDS: AeadBackend[] = [aeadBackend('node'), aeadBackend('native')];
const HEADROOM = 64;
const CAPACITY = HEADROOM + 1600;

interface Packet {
  data: Uint8Array;
  /** Flip bit `bit` of byte `at` (a fraction of the wire length) on receive; null: intact. */
  tamper: { at: number; bit: number } | null;
  /** Deliver it again right after: as it is, or with its last byte changed (a forged replay). */
  duplicate: 'none' | 'same' | 'forged';
}

const packetArb: fc.Arbitrary<Packet> = fc.record({
  data: fc.uint8Array({ minLength: 0, maxLength: 1500 }),
  tamper: fc.option(fc.record({ at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), bit: fc.nat(7) })),
  duplicate: fc.constantFrom('none', 'same', 'forged'),
});

const caseArb = fc.constantFrom(...AEADS).chain((cipher) =>
  fc.record({
    cipher: fc.constant(cipher),
    key: fc.uint8Array({ minLength: cipherInfo(cipher).keySize, maxLength: cipherInfo(cipher).keySize }),
    nonceTail: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    firstPacketId: fc.integer({ min: 1, max: 0xffffffff - 200 }),
    keyId: fc.nat(7),
    peerId: fc.nat(0xffffff),
    packets: fc.array(packetArb, { minLength: 1, maxLength: 40 }),
  }),
);

/** Seals the packets as one batch on `backend`, then delivers them (tampered, duplicated) as one batch. */
function run(backend: AeadBackend, c: CaseValue) {
  const material = { key: c.key, nonceTail: c.nonceTail };
  const config: KeyConfig = { keyId: c.keyId, cipher: c.cipher, encrypt: material, decrypt: material };
  const sender = new KeyContext(config, new PacketIdSender(c.firstPacketId), backend);
  const out = newBatch(c.packets.length, CAPACITY);
  c.packets.forEach((p, i) => {
    out.bufs[i]!.set(p.data, HEADROOM);
    out.sizes[i] = p.data.length;
  });
  out.count = c.packets.length;
  const drops = newDropCounters();
  assert.equal(sealRange(out, 0, out.count, sender, c.peerId, drops), 0);
  const wires = c.packets.map((_, i) =>
    Buffer.from(out.bufs[i]!.subarray(out.offsets[i]!, out.offsets[i]! + out.sizes[i]!)),
  );

  const delivered: Buffer[] = [];
  c.packets.forEach((p, i) => {
    const wire = Buffer.from(wires[i]!);
    if (p.tamper !== null) wire[Math.floor(p.tamper.at * wire.length)]! ^= 1 << p.tamper.bit;
    delivered.push(wire);
    if (p.duplicate === 'same') delivered.push(Buffer.from(wire));
    if (p.duplicate === 'forged') {
      const forged = Buffer.from(wires[i]!);
      forged[forged.length - 1]! ^= 0x80;
      delivered.push(forged);
    }
  });
  const batched = receive(backend, config, delivered, false);
  const oneByOne = receive(backend, config, delivered, true);
  return { wires, ...batched, oneByOne };
}

/** Opens the delivered packets as one batch (one backend call per run), or one packet per call. */
function receive(backend: AeadBackend, config: KeyConfig, delivered: Buffer[], oneByOne: boolean) {
  const slots = new KeySlots();
  slots.install(KeySlot.Primary, config, backend);
  const inb = newBatch(delivered.length, CAPACITY);
  delivered.forEach((wire, i) => {
    inb.bufs[i]!.set(wire, HEADROOM);
    inb.sizes[i] = wire.length;
  });
  inb.count = delivered.length;
  const drops = newDropCounters();
  if (oneByOne) for (let i = 0; i < inb.count; i++) openRange(inb, i, i + 1, slots, drops);
  else openRange(inb, 0, inb.count, slots, drops);
  const opened = delivered.map((_, i) =>
    inb.sizes[i] === DROPPED
      ? null
      : Buffer.from(inb.bufs[i]!.subarray(inb.offsets[i]!, inb.offsets[i]! + inb.sizes[i]!)),
  );
  return { opened, drops };
}

type CaseValue = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

describe('native and node:crypto backends agree', () => {
  test('same wire bytes, same packets accepted and refused, same drop counts', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const [node, native] = BACKENDS.map((backend) => run(backend, c));
        assert.deepEqual(native!.wires, node!.wires, 'wire bytes');
        assert.deepEqual(native!.opened, node!.opened, 'accepted packets and their plaintext');
        assert.deepEqual(native!.drops, node!.drops, 'drop counters');
        // A run opened in one call decides as packets opened one by one would, counters included.
        for (const r of [node!, native!]) {
          assert.deepEqual(r.opened, r.oneByOne.opened);
          assert.deepEqual(r.drops, r.oneByOne.drops);
        }
        // And both are right: every intact first delivery opens to its data, nothing else does.
        const expected: (Buffer | null)[] = [];
        for (const p of c.packets) {
          expected.push(p.tamper === null ? Buffer.from(p.data) : null);
          if (p.duplicate !== 'none') expected.push(null);
        }
        assert.deepEqual(node!.opened, expected);
      }),
      { numRuns: Number(process.env.AEAD_PROPERTY_RUNS ?? 150) },
    );
  });
});

function nativeConfig(cipher: CipherAlg = 'AES-256-GCM'): KeyConfig {
  const material = { key: Buffer.alloc(cipherInfo(cipher).keySize, 7), nonceTail: Buffer.alloc(8, 1) };
  return { keyId: 1, cipher, encrypt: material, decrypt: material };
}

describe('native key handles', () => {
  test('run on the OpenSSL inside node', () => {
    assert.ok(native().aeadOpenSSL().startsWith(`OpenSSL ${process.versions.openssl}`), native().aeadOpenSSL());
  });

  test('a deleted handle refuses further use, and delete is idempotent', () => {
    const io = native();
    const handle = io.aeadKeyNew('aes-256-gcm', Buffer.alloc(32, 1), Buffer.alloc(32, 2));
    const bufs = [Buffer.alloc(64)];
    const desc = new Int32Array([0, 0, 8, 24, 40, 8]);
    const ivs = Buffer.alloc(12);
    assert.equal(io.aeadSeal(handle, bufs, desc, ivs, 1), 1);
    io.aeadKeyDelete(handle);
    io.aeadKeyDelete(handle);
    assert.throws(() => io.aeadSeal(handle, bufs, desc, ivs, 1), { code: 'ERR_AEAD_KEY_DELETED' });
    assert.throws(() => io.aeadOpen(handle, bufs, desc, ivs, 1, new Int32Array(1)), { code: 'ERR_AEAD_KEY_DELETED' });
    assert.throws(() => io.aeadSeal({} as never, bufs, desc, ivs, 1), /not an AEAD key handle/);
  });

  test('a key deleted from its slot, or replaced, can no longer seal or open', () => {
    for (const backend of BACKENDS) {
      const slots = new KeySlots();
      const first = slots.install(KeySlot.Primary, nativeConfig(), backend);
      const second = slots.install(KeySlot.Primary, nativeConfig(), backend);
      const buf = Buffer.alloc(200);
      assert.throws(() => first.seal(buf, 64, 10, 1), /was deleted/);
      assert.throws(() => first.open(buf, 0, 100), /was deleted/);
      assert.ok(second.seal(buf, 64, 10, 1) > 0);
      slots.delete();
      assert.throws(() => second.seal(buf, 64, 10, 1), /was deleted/);
    }
  });

  test('a descriptor outside its buffer is refused before anything is written', () => {
    const io = native();
    const handle = io.aeadKeyNew('chacha20-poly1305', Buffer.alloc(32), Buffer.alloc(32));
    const buf = Buffer.alloc(64, 0xaa);
    const good = [0, 0, 8, 24, 40, 8];
    const ivs = Buffer.alloc(24);
    for (const bad of [
      [0, 0, 8, 24, 41, 8], // data runs past the end
      [0, 0, 8, 24, 40, 49], // tag runs past the end
      [0, -1, 8, 24, 10, 8], // negative offset
      [0, 60, 8, 24, 10, 8], // AAD runs past the end
      [1, 0, 8, 24, 10, 8], // no such buffer
    ]) {
      // The good first packet must not be sealed either: the call fails as a whole.
      const desc = new Int32Array([...good, ...bad]);
      assert.throws(() => io.aeadSeal(handle, [buf], desc, ivs, 2), RangeError, JSON.stringify(bad));
      assert.ok(
        buf.every((byte) => byte === 0xaa),
        'nothing written',
      );
    }
    assert.throws(() => io.aeadSeal(handle, [buf], new Int32Array(good), ivs, 2), RangeError, 'count past desc');
    assert.throws(() => io.aeadKeyNew('aes-256-gcm', Buffer.alloc(16), Buffer.alloc(32)), RangeError);
    assert.throws(() => io.aeadKeyNew('aes-256-cbc', Buffer.alloc(32), Buffer.alloc(32)), /only AES-GCM/);
    io.aeadKeyDelete(handle);
  });

  test('open leaves a forged packet untouched and reports it', () => {
    const io = native();
    const handle = io.aeadKeyNew('aes-128-gcm', Buffer.alloc(16, 3), Buffer.alloc(16, 3));
    const plain = Buffer.from('a packet of plaintext');
    const buf = Buffer.alloc(24 + plain.length);
    plain.copy(buf, 24);
    const desc = new Int32Array([0, 0, 8, 24, plain.length, 8]);
    const ivs = Buffer.alloc(12, 9);
    io.aeadSeal(handle, [buf], desc, ivs, 1);
    const forged = Buffer.from(buf);
    forged[8]! ^= 1;
    const before = Buffer.from(forged);
    const results = new Int32Array(2);
    assert.equal(
      io.aeadOpen(
        handle,
        [forged, buf],
        new Int32Array([...desc, 1, 0, 8, 24, plain.length, 8]),
        Buffer.concat([ivs, ivs]),
        2,
        results,
      ),
      1,
    );
    assert.deepEqual([...results], [AEAD_AUTH_FAILED, plain.length]);
    assert.deepEqual(forged, before);
    assert.deepEqual(buf.subarray(24), plain);
    io.aeadKeyDelete(handle);
  });

  test('past the context limit, keys take turns at the contexts and still agree with node:crypto', () => {
    const io = native();
    const [, limit] = io.aeadContexts();
    try {
      io.aeadContexts(2);
      // Distinct keys per handle, mixed ciphers: a context re-keyed for the wrong key or cipher
      // would produce bytes node:crypto does not, or fail to open them.
      const configs = AEADS.flatMap((cipher, c) =>
        [1, 2].map((n) => {
          const size = cipherInfo(cipher).keySize;
          const material = (fill: number) => ({ key: Buffer.alloc(size, fill), nonceTail: Buffer.alloc(8, fill) });
          return { keyId: 1, cipher, encrypt: material(c * 16 + n), decrypt: material(c * 16 + n + 8) };
        }),
      );
      const natives = configs.map((config) => new KeyContext(config, undefined, nativeAead));
      const refs = configs.map((config) => new KeyContext(config, undefined, aeadBackend('node')));
      const opener = (config: KeyConfig) => ({ ...config, encrypt: config.decrypt, decrypt: config.encrypt });
      const nativeOpeners = configs.map((config) => new KeyContext(opener(config), undefined, nativeAead));
      for (let round = 0; round < 3; round++) {
        natives.forEach((key, i) => {
          const mine = Buffer.alloc(200, round);
          const theirs = Buffer.alloc(200, round);
          const size = key.seal(mine, 64, 100, 7);
          assert.equal(refs[i]!.seal(theirs, 64, 100, 7), size);
          assert.deepEqual(mine, theirs, `key ${i} round ${round}: same wire bytes`);
          const start = 64 - key.overhead;
          assert.ok(nativeOpeners[i]!.open(mine, start, size) >= 0, `key ${i} round ${round}: opens`);
          assert.ok(io.aeadContexts()[0] <= 2, 'never more bound than the limit');
        });
      }
      for (const key of [...natives, ...nativeOpeners]) key.destroy();
      assert.throws(() => natives[0]!.seal(Buffer.alloc(200), 64, 10, 1), /was deleted/);
      assert.throws(() => io.aeadContexts(0), { name: 'RangeError', message: /limit must be a whole number from 1/ });
    } finally {
      io.aeadContexts(limit);
    }
  });

  test('a deleted key gives its contexts back and cannot use the ones it gave', () => {
    const io = native();
    const [, limit] = io.aeadContexts();
    try {
      io.aeadContexts(1);
      const bufs = [Buffer.alloc(64)];
      const desc = new Int32Array([0, 0, 8, 24, 40, 8]);
      const ivs = Buffer.alloc(12);
      const a = io.aeadKeyNew('aes-256-gcm', Buffer.alloc(32, 1), Buffer.alloc(32, 2));
      const b = io.aeadKeyNew('chacha20-poly1305', Buffer.alloc(32, 3), Buffer.alloc(32, 4));
      assert.equal(io.aeadContexts()[0], 1, 'b took the only pair from a');
      io.aeadKeyDelete(b);
      assert.equal(io.aeadContexts()[0], 0, 'a deleted key holds nothing');
      assert.throws(() => io.aeadSeal(b, bufs, desc, ivs, 1), { code: 'ERR_AEAD_KEY_DELETED' });
      assert.equal(io.aeadSeal(a, bufs, desc, ivs, 1), 1, 'a binds again');
      io.aeadKeyDelete(a);
    } finally {
      io.aeadContexts(limit);
    }
  });

  test('creating and deleting many keys leaves RSS flat', () => {
    // OVPN_AEAD_STRESS_KEYS=1000000 for a longer run.
    const total = Number(process.env.OVPN_AEAD_STRESS_KEYS ?? 100_000);
    const warm = Math.min(10_000, total / 10);
    const config = nativeConfig('CHACHA20-POLY1305');
    const gcm = nativeConfig('AES-256-GCM');
    let rssAfterWarmup = 0;
    for (let i = 0; i < total; i++) {
      const context = new KeyContext(i % 2 === 0 ? config : gcm, undefined, nativeAead);
      context.destroy();
      if (i === warm) rssAfterWarmup = process.memoryUsage.rss();
    }
    const growth = process.memoryUsage.rss() - rssAfterWarmup;
    // Leaked contexts would cost over a kilobyte each: ~90 MB here.
    assert.ok(growth < 24 * 2 ** 20, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB over ${total - warm} keys`);
  });
});
