/**
 * Property tests of the data-channel core (fast-check): for any payload, key and cipher,
 * sealing then opening round-trips; any single bit flip is refused; replays are refused;
 * reordering inside the window is accepted; forged packets leave the window unchanged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CIPHER_ALGS,
  KeyContext,
  KeyError,
  REPLAY_WINDOW_SIZE,
  ReplayVerdict,
  ReplayWindow,
} from '../src/core/index.js';
import { AEADS, keyPair, openOne, sealOne } from './helpers/keys.js';

const RUNS = 200;
const payload = fc.uint8Array({ minLength: 0, maxLength: 1500 });

test('round trip: any payload under any cipher opens to itself', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...CIPHER_ALGS),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 0xffffff }),
      payload,
      (cipher, keyId, peerId, data) => {
        const [a, b] = keyPair(cipher, keyId);
        const wire = sealOne(new KeyContext(a), data, peerId);
        assert.deepEqual(openOne(new KeyContext(b), wire), Buffer.from(data));
      },
    ),
    { numRuns: RUNS },
  );
});

test('any single bit flip in an AEAD packet is refused and leaves the window where it was', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...AEADS),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.nat(),
      (cipher, data, where) => {
        const [a, b] = keyPair(cipher);
        const sender = new KeyContext(a);
        const receiver = new KeyContext(b);
        const wire = Buffer.from(sealOne(sender, data));
        const bit = where % (wire.length * 8);
        wire[bit >> 3]! ^= 1 << (bit & 7);
        const result = openOne(receiver, wire);
        assert.ok(typeof result === 'number' && result < 0, `flip of bit ${bit} was accepted`);
        assert.equal(receiver.highestPacketIdReceived, 0, 'forged packet moved the window');
        // The genuine packet still opens afterwards: the forgery consumed nothing.
        assert.deepEqual(openOne(receiver, sealOne(sender, data)), Buffer.from(data));
      },
    ),
    { numRuns: RUNS },
  );
});

test('a replayed packet is refused, whatever else arrived in between', () => {
  fc.assert(
    fc.property(fc.constantFrom(...CIPHER_ALGS), fc.integer({ min: 1, max: 20 }), fc.nat(), (cipher, count, pick) => {
      const [a, b] = keyPair(cipher);
      const sender = new KeyContext(a);
      const receiver = new KeyContext(b);
      const wires = Array.from({ length: count }, (_, i) => Buffer.from(sealOne(sender, Buffer.from([i]))));
      for (const wire of wires) assert.ok(Buffer.isBuffer(openOne(receiver, wire)));
      assert.equal(openOne(receiver, wires[pick % count]!), KeyError.Replay);
    }),
    { numRuns: RUNS },
  );
});

test('any reordering inside the window is accepted, each id exactly once', () => {
  fc.assert(
    fc.property(
      fc.shuffledSubarray(
        Array.from({ length: 200 }, (_, i) => i + 1),
        { minLength: 1 },
      ),
      fc.integer({ min: 0, max: 5_000_000 }),
      (ids, base) => {
        const window = new ReplayWindow();
        for (const id of ids) assert.equal(window.accept(base + id), ReplayVerdict.Ok, `id ${base + id}`);
        for (const id of ids) assert.equal(window.accept(base + id), ReplayVerdict.Duplicate);
      },
    ),
    { numRuns: RUNS },
  );
});

test('the window matches a reference model: accept iff new, non-zero and within 2048 of the highest', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 6000 }), { maxLength: 400 }), (ids) => {
      const window = new ReplayWindow();
      const seen = new Set<number>();
      let top = 0;
      for (const id of ids) {
        const expected = id !== 0 && !seen.has(id) && (id > top || top - id < REPLAY_WINDOW_SIZE);
        assert.equal(window.accept(id) === ReplayVerdict.Ok, expected, `id ${id} with top ${top}`);
        if (expected) {
          seen.add(id);
          top = Math.max(top, id);
        }
      }
    }),
    { numRuns: RUNS },
  );
});

test('forged packets (random bytes with a valid header) never move the window', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...AEADS),
      fc.uint8Array({ minLength: 24, maxLength: 200 }),
      fc.integer({ min: 1, max: 0xffffffff }),
      (cipher, junk, packetId) => {
        const [, b] = keyPair(cipher);
        const receiver = new KeyContext(b);
        const wire = Buffer.from(junk);
        wire.writeUInt32BE(0x48000007, 0);
        wire.writeUInt32BE(packetId, 4);
        assert.equal(openOne(receiver, wire), KeyError.Auth);
        assert.equal(receiver.highestPacketIdReceived, 0);
      },
    ),
    { numRuns: RUNS },
  );
});
