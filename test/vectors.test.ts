/**
 * Known-answer vectors captured from OpenVPN 2.6.14: every vector of every *.json file in
 * $OVPN_VECTORS (default test/vectors, captured from OpenVPN 2.6.14 and kept in the repository) must open to exactly its
 * plaintext and seal back to exactly its wire bytes, on both AEAD backends (node:crypto and the
 * native shim).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type AeadBackend,
  type CipherAlg,
  DirectionalKey,
  HEADROOM,
  isCipherAlg,
  KeyContext,
  PacketIdSender,
  parseDataV2Header,
  sealPacket,
} from '../src/core/index.js';
import { aeadBackend } from '../src/edge/aead.js';

const BACKENDS: AeadBackend[] = [aeadBackend('node'), aeadBackend('native')];

interface Vector {
  source: string;
  cipher: string;
  key: string;
  nonce_tail: string;
  opcode: number;
  key_id: number;
  peer_id: number;
  packet_id: number;
  wire: string;
  plaintext: string;
}

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');
const dir = process.env.OVPN_VECTORS ? resolve(process.env.OVPN_VECTORS) : resolve(repoRoot, 'test/vectors');

function loadVectors(): { file: string; index: number; vector: Vector }[] {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort();
  return files.flatMap((file) => {
    const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { format?: string; vectors?: Vector[] };
    assert.equal(doc.format, 'openvpn-data-v2-kat/1', `${file}: unknown format`);
    assert.ok(Array.isArray(doc.vectors), `${file}: no "vectors" array`);
    return doc.vectors.map((vector, index) => ({ file, index, vector }));
  });
}

function cipherOf(vector: Vector): CipherAlg {
  assert.ok(isCipherAlg(vector.cipher), `unknown cipher ${vector.cipher}`);
  return vector.cipher;
}

function contextFor(vector: Vector, backend: AeadBackend, sender?: PacketIdSender): KeyContext {
  const material = { key: Buffer.from(vector.key, 'hex'), nonceTail: Buffer.from(vector.nonce_tail, 'hex') };
  const config = { keyId: vector.key_id, cipher: cipherOf(vector), encrypt: material, decrypt: material };
  return new KeyContext(config, sender, backend);
}

const vectors = loadVectors();

test(`vector directory ${dir} holds vectors`, () => {
  assert.ok(vectors.length > 0, `no vectors found in ${dir}: set OVPN_VECTORS to a directory of *.json captures`);
});

for (const { file, index, vector } of vectors) {
  const name = `${file}#${index} ${vector.cipher} packet-id ${vector.packet_id} (${vector.plaintext.length / 2} bytes)`;
  const wire = Buffer.from(vector.wire, 'hex');
  const plaintext = Buffer.from(vector.plaintext, 'hex');

  for (const backend of BACKENDS) {
    test(`opens ${name} (${backend.name})`, () => {
      const header = parseDataV2Header(wire, 0, wire.length);
      assert.deepEqual(header, { keyId: vector.key_id, peerId: vector.peer_id });
      assert.equal(vector.opcode, 9);
      const buf = Buffer.alloc(wire.length + 8);
      wire.copy(buf, 8);
      const context = contextFor(vector, backend);
      const length = context.open(buf, 8, wire.length);
      assert.equal(length, plaintext.length);
      assert.deepEqual(buf.subarray(8 + context.overhead, 8 + context.overhead + length), plaintext);
      assert.equal(context.highestPacketIdReceived, vector.packet_id);
    });

    test(`a key context seals ${name} (${backend.name})`, () => {
      const context = contextFor(vector, backend, new PacketIdSender(vector.packet_id));
      const buf = Buffer.alloc(HEADROOM + plaintext.length);
      plaintext.copy(buf, HEADROOM);
      const size = context.seal(buf, HEADROOM, plaintext.length, vector.peer_id);
      const start = HEADROOM - context.overhead;
      assert.equal(size, wire.length);
      assert.equal(buf.subarray(start, start + size).toString('hex'), vector.wire);
    });
  }

  test(`seals ${name}`, () => {
    const material = { key: Buffer.from(vector.key, 'hex'), nonceTail: Buffer.from(vector.nonce_tail, 'hex') };
    const key = new DirectionalKey(cipherOf(vector), material.key, material.nonceTail);
    const buf = Buffer.alloc(HEADROOM + plaintext.length);
    plaintext.copy(buf, HEADROOM);
    const size = sealPacket(key, vector.key_id, vector.peer_id, vector.packet_id, buf, HEADROOM, plaintext.length);
    const start = HEADROOM - key.info.overhead;
    assert.equal(size, wire.length);
    assert.equal(buf.subarray(start, start + size).toString('hex'), vector.wire);
  });
}

for (const backend of BACKENDS)
  test(`a key context opens each captured stream in order, then refuses every packet again (${backend.name})`, () => {
    // One stream per key; the same capture may sit in several files, so each packet-id once.
    const streams = new Map<string, Map<number, Vector>>();
    for (const { vector } of vectors) {
      const id = `${vector.cipher}/${vector.key}/${vector.nonce_tail}/${vector.key_id}`;
      const stream = streams.get(id) ?? new Map<number, Vector>();
      stream.set(vector.packet_id, vector);
      streams.set(id, stream);
    }
    for (const stream of streams.values()) {
      const ordered = [...stream.values()].sort((a, b) => a.packet_id - b.packet_id);
      const context = contextFor(ordered[0]!, backend);
      for (const pass of [0, 1]) {
        for (const vector of ordered) {
          const wire = Buffer.from(vector.wire, 'hex');
          const length = context.open(wire, 0, wire.length);
          if (pass === 0) assert.equal(length, vector.plaintext.length / 2, `packet-id ${vector.packet_id}`);
          else assert.ok(length < 0, `replayed packet-id ${vector.packet_id} must be refused`);
        }
      }
    }
  });
