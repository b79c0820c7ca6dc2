/** Unit tests of the OS-free core: framing, packet-ids, replay window, key slots, key file, batches. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  BUFFER_SIZE,
  type CipherAlg,
  classify,
  compact,
  composeOpByte,
  DirectionalKey,
  DROPPED,
  EXIT_NOTIFY_MESSAGE,
  HEADROOM,
  isExitNotify,
  isKeepalive,
  KEEPALIVE_MESSAGE,
  KeyContext,
  KeyError,
  KeySlot,
  KeySlots,
  keyIdOf,
  MAX_BATCH,
  newBatch,
  newDropCounters,
  opcodeOf,
  openBatch,
  PACKET_ID_MAX,
  PACKET_ID_WRAP_WARN,
  PacketIdSender,
  PacketKind,
  packetView,
  parseDataV2Header,
  parseKeyFile,
  pushPacket,
  REPLAY_WINDOW_SIZE,
  ReplayVerdict,
  ReplayWindow,
  resetOffsets,
  sealBatch,
  TAILROOM,
  writeDataV2Header,
} from '../src/core/index.js';
import { AEADS, keyPair, openOne, sealOne } from './helpers/keys.js';

describe('wire format', () => {
  test('op byte packs opcode in the top five bits and key-id in the low three', () => {
    assert.equal(composeOpByte(9, 0), 0x48);
    assert.equal(composeOpByte(9, 7), 0x4f);
    assert.equal(opcodeOf(0x4f), 9);
    assert.equal(keyIdOf(0x4f), 7);
  });

  test('DATA_V2 header round-trips key-id and 24-bit peer-id', () => {
    const buf = Buffer.alloc(4);
    writeDataV2Header(buf, 0, 5, 0x123456);
    assert.equal(buf.toString('hex'), '4d123456');
    assert.deepEqual(parseDataV2Header(buf, 0, 4), { keyId: 5, peerId: 0x123456 });
    writeDataV2Header(buf, 0, 0, 0xffffff);
    assert.equal(buf.toString('hex'), '48ffffff');
  });

  test('classifies data V2, data V1, control and empty packets', () => {
    assert.equal(classify(Buffer.from([0x48]), 0, 1), PacketKind.DataV2);
    assert.equal(classify(Buffer.from([0x30]), 0, 1), PacketKind.DataV1);
    for (const op of [1, 2, 3, 4, 5, 7, 8, 10, 11, 0, 31]) {
      assert.equal(classify(Buffer.from([op << 3]), 0, 1), PacketKind.Control, `opcode ${op}`);
    }
    assert.equal(classify(Buffer.alloc(0), 0, 0), PacketKind.Malformed);
    assert.equal(parseDataV2Header(Buffer.from([0x48, 0, 0]), 0, 3), null);
    assert.equal(parseDataV2Header(Buffer.from([0x20, 0, 0, 1]), 0, 4), null);
  });

  test('recognises keepalive and explicit-exit-notify messages exactly', () => {
    assert.equal(KEEPALIVE_MESSAGE.toString('hex'), '2a187bf3641eb4cb07ed2d0a981fc748');
    assert.ok(isKeepalive(KEEPALIVE_MESSAGE, 0, 16));
    assert.ok(!isKeepalive(Buffer.concat([KEEPALIVE_MESSAGE, Buffer.from([0])]), 0, 17));
    assert.equal(EXIT_NOTIFY_MESSAGE.toString('hex'), '287f346bd4ef7a812d56b8d3afc5459c06');
    assert.ok(isExitNotify(EXIT_NOTIFY_MESSAGE, 0, 17));
    assert.ok(!isExitNotify(KEEPALIVE_MESSAGE, 0, 16));
  });
});

describe('packet-ids', () => {
  test('start at 1 and count up', () => {
    const sender = new PacketIdSender();
    assert.equal(sender.take(), 1);
    assert.equal(sender.take(), 2);
    assert.equal(sender.last, 2);
  });

  test('never wrap: the last id is 2^32-1, then -1 forever', () => {
    const sender = new PacketIdSender(PACKET_ID_MAX);
    assert.equal(sender.take(), PACKET_ID_MAX);
    assert.equal(sender.take(), -1);
    assert.equal(sender.take(), -1);
    assert.ok(sender.exhausted);
  });

  test('a key signals swap-needed once past the warning threshold, then refuses to seal when exhausted', () => {
    const [config] = keyPair('AES-256-GCM');
    const context = new KeyContext(config, new PacketIdSender(PACKET_ID_WRAP_WARN - 1));
    const signals: number[] = [];
    context.onSwapNeeded = (keyId) => signals.push(keyId);
    sealOne(context, Buffer.from('a'));
    assert.deepEqual(signals, []);
    sealOne(context, Buffer.from('b'));
    sealOne(context, Buffer.from('c'));
    assert.deepEqual(signals, [0], 'signalled exactly once');

    const last = new KeyContext(config, new PacketIdSender(PACKET_ID_MAX));
    sealOne(last, Buffer.from('x'));
    const buf = Buffer.alloc(HEADROOM + 1);
    assert.equal(last.seal(buf, HEADROOM, 1, 1), KeyError.Exhausted);
  });
});

describe('replay window', () => {
  test('rejects 0 and duplicates, accepts reordering inside the window', () => {
    const window = new ReplayWindow();
    assert.equal(window.accept(0), ReplayVerdict.Zero);
    assert.equal(window.accept(5), ReplayVerdict.Ok);
    assert.equal(window.accept(5), ReplayVerdict.Duplicate);
    assert.equal(window.accept(3), ReplayVerdict.Ok);
    assert.equal(window.accept(4), ReplayVerdict.Ok);
    assert.equal(window.accept(3), ReplayVerdict.Duplicate);
    assert.equal(window.highest, 5);
  });

  test(`remembers exactly ${REPLAY_WINDOW_SIZE} ids back`, () => {
    const window = new ReplayWindow();
    const top = 10_000;
    assert.equal(window.accept(top), ReplayVerdict.Ok);
    assert.equal(window.check(top - REPLAY_WINDOW_SIZE + 1), ReplayVerdict.Ok);
    assert.equal(window.check(top - REPLAY_WINDOW_SIZE), ReplayVerdict.TooOld);
    assert.equal(window.accept(top - REPLAY_WINDOW_SIZE + 1), ReplayVerdict.Ok);
    assert.equal(window.accept(top - REPLAY_WINDOW_SIZE + 1), ReplayVerdict.Duplicate);
  });

  test('sliding forward forgets the bits of ids it skipped', () => {
    const window = new ReplayWindow();
    window.accept(1);
    window.accept(1 + REPLAY_WINDOW_SIZE); // same bit position as 1
    assert.equal(window.check(1 + REPLAY_WINDOW_SIZE), ReplayVerdict.Duplicate);
    assert.equal(window.check(2), ReplayVerdict.Ok, 'bit of 2 + SIZE was never set');
    window.accept(2 + 2 * REPLAY_WINDOW_SIZE);
    assert.equal(window.check(2 + REPLAY_WINDOW_SIZE + 1), ReplayVerdict.Ok);
  });

  test('check alone never moves the window', () => {
    const window = new ReplayWindow();
    window.check(100);
    assert.equal(window.highest, 0);
    assert.equal(window.accept(100), ReplayVerdict.Ok);
  });
});

describe('ciphers', () => {
  for (const cipher of [...AEADS, 'NONE' as const]) {
    test(`${cipher}: seal and open round-trip, overhead ${cipher === 'NONE' ? 8 : 24} bytes`, () => {
      const [a, b] = keyPair(cipher, 3);
      const sender = new KeyContext(a);
      const receiver = new KeyContext(b);
      const payload = randomBytes(100);
      const wire = sealOne(sender, payload, 0xabcdef);
      assert.equal(wire.length, payload.length + (cipher === 'NONE' ? 8 : 24));
      assert.equal(wire.subarray(0, 8).toString('hex'), '4babcdef00000001');
      if (cipher === 'NONE') assert.deepEqual(wire.subarray(8), payload);
      else assert.notDeepEqual(wire.subarray(24), payload);
      assert.deepEqual(openOne(receiver, wire), payload);
      assert.equal(openOne(receiver, wire), KeyError.Replay);
    });
  }

  test('wrong key or nonce-tail lengths are refused naming the cipher and the length', () => {
    assert.throws(
      () => new DirectionalKey('AES-256-GCM', Buffer.alloc(16), Buffer.alloc(8)),
      /AES-256-GCM needs a 32-byte key, got 16 bytes/,
    );
    assert.throws(
      () => new DirectionalKey('AES-128-GCM', Buffer.alloc(32), Buffer.alloc(8)),
      /AES-128-GCM needs a 16-byte key, got 32/,
    );
    assert.throws(
      () => new DirectionalKey('CHACHA20-POLY1305', Buffer.alloc(32), Buffer.alloc(4)),
      /CHACHA20-POLY1305 needs a 8-byte nonce tail, got 4/,
    );
    assert.throws(() => new DirectionalKey('NONE', Buffer.alloc(32), Buffer.alloc(0)), /NONE needs a 0-byte key/);
    assert.throws(
      () => new DirectionalKey('AES-512-GCM' as CipherAlg, Buffer.alloc(32), Buffer.alloc(8)),
      /unknown cipher "AES-512-GCM"/,
    );
    const [config] = keyPair('AES-256-GCM');
    assert.throws(() => new KeyContext({ ...config, keyId: 8 }), /key-id must be an integer from 0 to 7, got 8/);
  });

  test('a wrong key fails authentication and does not move the replay window', () => {
    const [a] = keyPair('AES-256-GCM');
    const [, stranger] = keyPair('AES-256-GCM');
    const wire = sealOne(new KeyContext(a), Buffer.from('hello'));
    const receiver = new KeyContext(stranger);
    assert.equal(openOne(receiver, wire), KeyError.Auth);
    assert.equal(receiver.highestPacketIdReceived, 0);
  });

  test('key material never shows in JSON', () => {
    const [config] = keyPair('AES-256-GCM');
    const context = new KeyContext(config);
    const text =
      JSON.stringify(context) +
      JSON.stringify(new DirectionalKey('AES-256-GCM', config.encrypt.key, config.encrypt.nonceTail));
    assert.ok(!text.includes(Buffer.from(config.encrypt.key).toString('hex')));
    assert.deepEqual(JSON.parse(JSON.stringify(context)), { keyId: 0, cipher: 'AES-256-GCM' });
  });
});

describe('key slots', () => {
  test('seal with primary, open by key-id, swap, delete', () => {
    const [a1, b1] = keyPair('AES-256-GCM', 1);
    const [a2, b2] = keyPair('CHACHA20-POLY1305', 2);
    const alice = new KeySlots();
    const bob = new KeySlots();
    alice.install(KeySlot.Primary, a1);
    bob.install(KeySlot.Primary, b1);
    bob.install(KeySlot.Secondary, b2);

    const drops = newDropCounters();
    const batch = newBatch(4, 2048);
    pushPacket(batch, Buffer.from('one'));
    assert.equal(sealBatch(batch, alice.primary, 9, drops), 1);
    assert.equal(batch.bufs[0]![batch.offsets[0]!], 0x49, 'key-id 1 in the op byte');
    assert.equal(openBatch(batch, bob, drops), 1);
    assert.equal(packetView(batch, 0).toString(), 'one');

    alice.install(KeySlot.Secondary, a2);
    alice.swap();
    assert.equal(alice.primary?.keyId, 2);
    assert.equal(alice.secondary?.keyId, 1);
    const batch2 = newBatch(4, 2048);
    pushPacket(batch2, Buffer.from('two'));
    sealBatch(batch2, alice.primary, 9, drops);
    assert.equal(batch2.bufs[0]![batch2.offsets[0]!], 0x4a);
    assert.equal(openBatch(batch2, bob, drops), 1);
    assert.equal(packetView(batch2, 0).toString(), 'two');

    bob.delete(KeySlot.Secondary);
    assert.equal(bob.forKeyId(2), null);
    assert.equal(bob.forKeyId(1)?.keyId, 1);
    bob.delete();
    assert.equal(bob.primary, null);
    assert.equal(bob.secondary, null);
  });

  test('a packet whose key-id matches no slot is dropped and counted, not thrown', () => {
    const [a, b] = keyPair('AES-256-GCM', 4);
    const slots = new KeySlots();
    slots.install(KeySlot.Primary, { ...b, keyId: 5 });
    const drops = newDropCounters();
    const batch = newBatch(4, 2048);
    pushPacket(batch, Buffer.from('lost'));
    sealBatch(batch, new KeyContext(a), 1, drops);
    assert.equal(openBatch(batch, slots, drops), 0);
    assert.equal(drops.noKey, 1);
    assert.equal(batch.count, 0);
  });

  test('sealing with no primary drops and counts the whole batch', () => {
    const drops = newDropCounters();
    const batch = newBatch(4, 2048);
    pushPacket(batch, Buffer.from('a'));
    pushPacket(batch, Buffer.from('b'));
    assert.equal(sealBatch(batch, null, 1, drops), 0);
    assert.equal(drops.noKey, 2);
  });

  test('swap-needed from any installed key reaches the slots listener', () => {
    const slots = new KeySlots();
    const seen: number[] = [];
    slots.onSwapNeeded = (keyId) => seen.push(keyId);
    const [config] = keyPair('AES-256-GCM', 6);
    const context = slots.install(KeySlot.Primary, config);
    context.onSwapNeeded?.(6);
    assert.deepEqual(seen, [6]);
  });
});

describe('batches', () => {
  test('openBatch drops forged, replayed and malformed packets in place, keeping order and the sidecar aligned', () => {
    const [a, b] = keyPair('AES-256-GCM');
    const sender = new KeyContext(a);
    const slots = new KeySlots();
    slots.install(KeySlot.Primary, b);
    const batch = newBatch(8, 2048);
    const wires = ['p0', 'p1', 'p2', 'p3'].map((text) => sealOne(sender, Buffer.from(text)));
    const forged = Buffer.from(wires[1]!);
    forged[forged.length - 1]! ^= 1;
    for (const wire of [wires[0]!, forged, wires[2]!, Buffer.from([0x48]), wires[0]!, wires[3]!])
      pushPacket(batch, wire);
    const sidecar = { buf: Buffer.from([0, 1, 2, 3, 4, 5]), slotSize: 1 };
    const drops = newDropCounters();
    assert.equal(openBatch(batch, slots, drops, sidecar), 3);
    assert.deepEqual(
      [0, 1, 2].map((i) => packetView(batch, i).toString()),
      ['p0', 'p2', 'p3'],
    );
    assert.deepEqual([...sidecar.buf.subarray(0, 3)], [0, 2, 5]);
    assert.equal(drops.auth, 1);
    assert.equal(drops.replay, 1);
    assert.equal(drops.malformed, 1);
  });

  test('newBatch: fixed, separate buffers with headroom; bad shapes refused', () => {
    const batch = newBatch();
    assert.equal(batch.bufs.length, MAX_BATCH);
    assert.equal(batch.bufs[0]!.length, BUFFER_SIZE);
    assert.equal(BUFFER_SIZE, HEADROOM + 65535 + TAILROOM);
    assert.deepEqual(new Set(batch.offsets), new Set([HEADROOM]));
    // One slab for the batch, nothing else in it (not Node's pool), and no two buffers overlap.
    assert.equal(batch.bufs[0]!.buffer.byteLength, MAX_BATCH * BUFFER_SIZE);
    batch.bufs[1]!.fill(0);
    batch.bufs[0]!.fill(0xaa);
    batch.bufs[2]!.fill(0xbb);
    assert.equal(batch.bufs[1]!.indexOf(0xaa), -1, 'buffers do not overlap');
    assert.equal(batch.bufs[1]!.indexOf(0xbb), -1, 'buffers do not overlap');
    batch.count = 3;
    batch.offsets[1] = 0;
    resetOffsets(batch);
    assert.equal(batch.count, 0);
    assert.equal(batch.offsets[1], HEADROOM);
    assert.throws(() => newBatch(0), /batch size must be 1 to 128 packets, got 0/);
    assert.throws(() => newBatch(MAX_BATCH + 1), /got 129/);
    assert.throws(() => newBatch(1, 256, 16), /headroom must be at least 24 bytes, got 16/);
  });

  test('compact keeps every buffer in the pool', () => {
    const batch = newBatch(4, 128);
    const before = new Set(batch.bufs);
    for (let i = 0; i < 4; i++) pushPacket(batch, Buffer.from([i]));
    batch.sizes[1] = DROPPED;
    batch.sizes[2] = DROPPED;
    assert.equal(compact(batch), 2);
    assert.deepEqual(new Set(batch.bufs), before);
    assert.equal(packetView(batch, 1)[0], 3);
  });
});

describe('key file', () => {
  const raw = Buffer.alloc(72);
  for (let i = 0; i < 72; i++) raw[i] = i;
  const text = `${raw.toString('base64').replace(/(.{40})/g, '$1\n')}\n`;

  test('direction 0 encrypts with the first key, 1 with the second; both share the nonce tail', () => {
    const zero = parseKeyFile(text, 'AES-256-GCM', 0);
    const one = parseKeyFile(text, 'AES-256-GCM', 1);
    assert.deepEqual([...zero.encrypt.key], [...raw.subarray(0, 32)]);
    assert.deepEqual([...zero.decrypt.key], [...raw.subarray(32, 64)]);
    assert.deepEqual([...one.encrypt.key], [...raw.subarray(32, 64)]);
    assert.deepEqual([...zero.encrypt.nonceTail], [...raw.subarray(64, 72)]);
    assert.deepEqual([...one.decrypt.nonceTail], [...raw.subarray(64, 72)]);
    const short = parseKeyFile(text, 'AES-128-GCM', 0);
    assert.deepEqual([...short.encrypt.key], [...raw.subarray(0, 16)]);
    assert.equal(parseKeyFile(text, 'NONE', 0).encrypt.key.length, 0);
  });

  test('two ends with opposite directions talk', () => {
    const [sideA, sideB] = [0, 1].map(
      (dir) =>
        new KeyContext({
          keyId: 0,
          cipher: 'CHACHA20-POLY1305',
          ...parseKeyFile(text, 'CHACHA20-POLY1305', dir as 0 | 1),
        }),
    );
    assert.deepEqual(openOne(sideB!, sealOne(sideA!, Buffer.from('hi'))), Buffer.from('hi'));
    assert.deepEqual(openOne(sideA!, sealOne(sideB!, Buffer.from('yo'))), Buffer.from('yo'));
  });

  test("a longer file (like the upstream selftests' 256-byte data64.key) uses its first 72 bytes", () => {
    const long = Buffer.concat([raw, Buffer.alloc(184, 0xee)]);
    assert.deepEqual(parseKeyFile(long.toString('base64'), 'AES-256-GCM', 1), parseKeyFile(text, 'AES-256-GCM', 1));
  });

  test('short, empty and malformed files get clear errors', () => {
    assert.throws(() => parseKeyFile('', 'AES-256-GCM', 0), /key file is empty: expected base64 of 72 bytes/);
    assert.throws(
      () => parseKeyFile(raw.subarray(0, 40).toString('base64'), 'AES-256-GCM', 0, 'k.key'),
      /k\.key holds 40 bytes: expected at least 72/,
    );
    assert.throws(() => parseKeyFile('not base64 at all!', 'AES-256-GCM', 0), /not valid base64/);
    assert.throws(() => parseKeyFile(text, 'AES-256-GCM', 2 as 0), /key direction must be 0 or 1, got 2/);
  });
});
