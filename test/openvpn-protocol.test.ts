/**
 * The control plane's pure parts, without root: the control packet codec, the reliability layer
 * on a manual clock, key method 2, and data-channel key derivation checked against what a real
 * openvpn 2.6.14 printed (test/fixtures/openvpn-control, captured by
 * test/helpers/capture-control-vectors.ts).
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Opcode } from '../src/core/wire.js';
import { ManualClock } from '../src/edge/memory.js';
import {
  directionKeys,
  EXPORTER_LABEL,
  key2FromExporter,
  key2FromPrf,
  P2P_PEER_ID_LABEL,
  p2pPeerId,
  tls1Prf,
} from '../src/openvpn/data-keys.js';
import {
  buildPeerInfo,
  commonCipher,
  decodeKeyMethod2,
  encodeKeyMethod2,
  IvProto,
  ivProtoOf,
  parsePeerInfo,
} from '../src/openvpn/key-method.js';
import {
  type ControlOpcode,
  ControlPacketError,
  decodeControlPacket,
  encodeControlPacket,
} from '../src/openvpn/packet.js';
import { ReliableLink } from '../src/openvpn/reliable.js';
import { parseStaticKey } from '../src/openvpn/static-key.js';
import { TlsAuth, TlsCrypt } from '../src/openvpn/tls-wrap.js';
import { exporterSecretOf, tls13Export } from './helpers/tls13-exporter.js';

const FIXTURES = new URL('../../test/fixtures/openvpn-control/', import.meta.url);
interface Capture {
  cipher: 'AES-256-GCM' | 'CHACHA20-POLY1305';
  keyMethod: string;
  peerId: number;
  ourSessionId: string;
  theirSessionId: string;
  ourKeys: { encryptKey: string; decryptKey: string };
  openvpnLog: string[];
  keylog: string[];
  packets: { direction: 'in' | 'out'; hex: string }[];
}
const capture = (name: string): Capture => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
const CAPTURES = ['p2p-exporter.json', 'p2p-prf.json'].map((name) => ({ name, ...capture(name) }));

/** A hex value openvpn printed on the line starting with `prefix` (grouped in 4-byte words). */
function logged(c: Capture, prefix: string): Buffer {
  const line = c.openvpnLog.find((l) => l.startsWith(prefix));
  assert.ok(line, `openvpn printed no "${prefix}" line`);
  return Buffer.from(line.slice(line.indexOf(':') + 1).replace(/\s+/g, ''), 'hex');
}

const sid = (hex: string) => Buffer.from(hex, 'hex');

// ---- packet codec -------------------------------------------------------------------------

test('openvpn packet: CONTROL_V1 with acks encodes to the exact wire layout and back', () => {
  const packet = {
    opcode: Opcode.CONTROL_V1 as ControlOpcode,
    keyId: 2,
    sessionId: sid('0102030405060708'),
    acks: [5, 0x01020304],
    remoteSessionId: sid('a1a2a3a4a5a6a7a8'),
    messageId: 7,
    payload: Buffer.from('hello'),
  };
  const wire = encodeControlPacket(packet);
  assert.equal(
    wire.toString('hex'),
    // opcode 4 << 3 | key-id 2, sid, 2 acks, ids, remote sid, message id, payload
    `22${'0102030405060708'}02${'00000005'}${'01020304'}${'a1a2a3a4a5a6a7a8'}${'00000007'}${Buffer.from('hello').toString('hex')}`,
  );
  assert.deepEqual(decodeControlPacket(wire), packet);
});

test('openvpn packet: P_ACK_V1 has no message id; a reset without acks has no remote session id', () => {
  const ack = encodeControlPacket({
    opcode: Opcode.ACK_V1,
    keyId: 0,
    sessionId: sid('0000000000000001'),
    acks: [3],
    remoteSessionId: sid('0000000000000002'),
    payload: Buffer.alloc(0),
  });
  assert.equal(ack.toString('hex'), '28000000000000000101000000030000000000000002');
  const reset = encodeControlPacket({
    opcode: Opcode.CONTROL_HARD_RESET_CLIENT_V2,
    keyId: 0,
    sessionId: sid('0000000000000001'),
    acks: [],
    messageId: 0,
    payload: Buffer.alloc(0),
  });
  assert.equal(reset.toString('hex'), '38000000000000000100' + '00000000');
});

test('openvpn packet: truncated, over-acked and data packets are refused', () => {
  const good = Buffer.from('28000000000000000101000000030000000000000002', 'hex');
  for (let n = 0; n < good.length; n++)
    assert.throws(() => decodeControlPacket(good.subarray(0, n)), ControlPacketError, `length ${n}`);
  const nineAcks = Buffer.concat([good.subarray(0, 9), Buffer.from([9]), Buffer.alloc(9 * 4 + 8)]);
  assert.throws(() => decodeControlPacket(nineAcks), /acks 9/);
  assert.throws(() => decodeControlPacket(Buffer.from('480000000000000000', 'hex')), /not a control opcode/);
});

test('openvpn packet: every control packet of real openvpn 2.6.14 sessions decodes and re-encodes to the same bytes', () => {
  for (const c of CAPTURES) {
    const decoded = c.packets.map((p) => ({ ...p, packet: decodeControlPacket(Buffer.from(p.hex, 'hex')) }));
    for (const d of decoded) assert.equal(encodeControlPacket(d.packet).toString('hex'), d.hex, c.name);
    // The exchange as openvpn runs it: its empty hard reset (message 0), our reset acking it,
    // then TLS in P_CONTROL_V1 with both session ids; its session id is the one it sent.
    const first = decoded[0]!;
    assert.equal(first.direction, 'in');
    assert.equal(first.packet.opcode, Opcode.CONTROL_HARD_RESET_CLIENT_V2);
    assert.equal(first.packet.messageId, 0);
    assert.equal(first.packet.payload.length, 0);
    assert.equal(first.packet.sessionId.toString('hex'), c.theirSessionId);
    const reply = decoded[1]!;
    assert.equal(reply.packet.opcode, Opcode.CONTROL_HARD_RESET_SERVER_V2);
    assert.deepEqual(reply.packet.acks, [0]);
    assert.equal(reply.packet.remoteSessionId?.toString('hex'), c.theirSessionId);
    // openvpn printed our session id as the one it learnt.
    const [hi, lo] = [c.ourSessionId.slice(0, 8), c.ourSessionId.slice(8)];
    assert.ok(
      c.openvpnLog.some((l) => l.includes(`sid=${hi} ${lo}`)),
      c.name,
    );
    const theirs = decoded.filter((d) => d.direction === 'in' && d.packet.messageId !== undefined);
    assert.deepEqual(
      theirs.map((d) => d.packet.messageId),
      theirs.map((_, i) => i),
      'openvpn numbers its messages from 0 without gaps',
    );
    // openvpn repeats recently acked ids in later packets (its ack MRU), so ours may come back.
    const lastAck = [...decoded].reverse().find((d) => d.direction === 'in')!;
    assert.ok(lastAck.packet.acks.length > 1, 'openvpn acks several ids per packet');
    assert.ok(decoded.every((d) => d.packet.acks.length <= 8));
  }
});

// ---- reliability layer ---------------------------------------------------------------------

function link(clock: ManualClock, delivered: string[] = []) {
  return new ReliableLink({
    clock,
    deliver: (_op, payload, id) => delivered.push(`${id}:${payload.toString()}`),
  });
}

test('openvpn reliable: a window of six in flight, retransmission with doubling timeout, acks stop it', () => {
  const clock = new ManualClock();
  const r = link(clock);
  for (let i = 0; i < 8; i++) r.send(Opcode.CONTROL_V1, Buffer.from(`m${i}`));
  assert.deepEqual(
    r.flush().map((f) => f.messageId),
    [0, 1, 2, 3, 4, 5],
  );
  assert.deepEqual(r.flush(), [], 'nothing is due before the timeout');
  clock.advance(1999);
  assert.deepEqual(r.flush(), []);
  clock.advance(1);
  assert.deepEqual(
    r.flush().map((f) => f.messageId),
    [0, 1, 2, 3, 4, 5],
  );
  r.acked([0, 2]);
  // The window slides past the acked messages: the new ones go at once.
  assert.deepEqual(
    r.flush().map((f) => f.messageId),
    [6, 7],
  );
  clock.advance(2000);
  assert.deepEqual(
    r.flush().map((f) => f.messageId),
    [6, 7],
  );
  // The others were retransmitted once already: 4 s this time.
  clock.advance(1999);
  assert.deepEqual(r.flush(), []);
  clock.advance(1);
  assert.deepEqual(
    r.flush().map((f) => f.messageId),
    [1, 3, 4, 5],
  );
  assert.equal(r.nextDue(), 8000, 'messages 6 and 7 come next, 4 s after their retransmission');
  assert.equal(r.stats.retransmits, 12);
  r.acked([1, 3, 4, 5, 6, 7]);
  assert.ok(r.idle());
  assert.equal(r.nextDue(), undefined);
});

test('openvpn reliable: in-order delivery, duplicates acked again but not delivered, beyond the window not acked', () => {
  const clock = new ManualClock();
  const delivered: string[] = [];
  const r = link(clock, delivered);
  r.receive(Opcode.CONTROL_V1, 1, Buffer.from('b'));
  assert.deepEqual(delivered, []);
  r.receive(Opcode.CONTROL_V1, 0, Buffer.from('a'));
  assert.deepEqual(delivered, ['0:a', '1:b']);
  r.receive(Opcode.CONTROL_V1, 0, Buffer.from('a'));
  r.receive(Opcode.CONTROL_V1, 2 + 12, Buffer.from('far'));
  assert.deepEqual(delivered, ['0:a', '1:b']);
  assert.deepEqual(r.stats, { sent: 0, retransmits: 0, received: 2, duplicates: 1, outOfWindow: 1 });
  // Acks owed: 1, 0, and 0 again (its first ack may have been lost); four per packet at most.
  const frames = r.flush();
  assert.deepEqual(
    frames.map((f) => [f.opcode, f.acks]),
    [[Opcode.ACK_V1, [1, 0]]],
  );
  assert.ok(!r.owesAcks());
  for (let i = 2; i < 8; i++) r.receive(Opcode.CONTROL_V1, i, Buffer.from('x'));
  r.send(Opcode.CONTROL_V1, Buffer.from('reply'));
  assert.deepEqual(
    r.flush().map((f) => [f.opcode, f.messageId, f.acks]),
    [
      [Opcode.CONTROL_V1, 0, [2, 3, 4, 5]],
      [Opcode.ACK_V1, undefined, [6, 7]],
    ],
  );
});

// ---- key method 2 --------------------------------------------------------------------------

test('openvpn key method 2: the client message lays out zero, method, pre-master, randoms and u16 strings with NUL', () => {
  const message = {
    source: { preMaster: Buffer.alloc(48, 1), random1: Buffer.alloc(32, 2), random2: Buffer.alloc(32, 3) },
    options: 'V4,dev-type tun',
    username: '',
    password: '',
    peerInfo: 'IV_PROTO=42\n',
  };
  const wire = encodeKeyMethod2(message, true);
  const expected = Buffer.concat([
    Buffer.from([0, 0, 0, 0, 2]),
    Buffer.alloc(48, 1),
    Buffer.alloc(32, 2),
    Buffer.alloc(32, 3),
    Buffer.from([0, 16]),
    Buffer.from('V4,dev-type tun\0'),
    Buffer.from([0, 0, 0, 0]),
    Buffer.from([0, 13]),
    Buffer.from('IV_PROTO=42\n\0'),
  ]);
  assert.equal(wire.toString('hex'), expected.toString('hex'));
  assert.deepEqual(decodeKeyMethod2(wire, true), message);
  // The server sends no pre-master.
  const server = { ...message, source: { random1: Buffer.alloc(32, 2), random2: Buffer.alloc(32, 3) } };
  const serverWire = encodeKeyMethod2(server, false);
  assert.equal(serverWire.length, wire.length - 48);
  assert.deepEqual(decodeKeyMethod2(serverWire, false), server);
  assert.throws(() => decodeKeyMethod2(serverWire.subarray(0, 40), false), /too short/);
});

test('openvpn key method 2: peer-info, IV_PROTO bits and the P2P cipher choice (the tls-server preference)', () => {
  const info = buildPeerInfo({ version: '2.6.14', ciphers: ['AES-256-GCM', 'CHACHA20-POLY1305'], ivProto: 746 });
  assert.equal(info, 'IV_VER=2.6.14\nIV_CIPHERS=AES-256-GCM:CHACHA20-POLY1305\nIV_PROTO=746\n');
  const vars = parsePeerInfo(info);
  const proto = ivProtoOf(vars);
  assert.ok(proto & IvProto.DATA_V2 && proto & IvProto.TLS_KEY_EXPORT && proto & IvProto.NCP_P2P);
  assert.equal(proto & IvProto.REQUEST_PUSH, 0);
  assert.equal(
    commonCipher(['CHACHA20-POLY1305', 'AES-256-GCM'], ['aes-256-gcm', 'CHACHA20-POLY1305']),
    'CHACHA20-POLY1305',
  );
  assert.equal(commonCipher(['AES-128-GCM'], ['AES-256-GCM']), undefined);
});

// ---- data-channel keys, against openvpn ----------------------------------------------------

test("openvpn keys: TLS 1.0 PRF agrees with OpenSSL's TLS1-PRF KDF", { skip: opensslKdfMissing() }, () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef01', 'hex');
  const seed = Buffer.from('OpenVPN master secret seed bytes');
  const ours = tls1Prf(secret, seed, 100);
  const theirs = execFileSync(
    'openssl',
    [
      'kdf',
      '-keylen',
      '100',
      '-kdfopt',
      'digest:MD5-SHA1',
      '-kdfopt',
      `hexsecret:${secret.toString('hex')}`,
      '-kdfopt',
      `hexseed:${seed.toString('hex')}`,
      'TLS1-PRF',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(ours.toString('hex'), theirs.trim().replace(/:/g, '').toLowerCase());
});

test("openvpn keys: PRF key expansion from openvpn 2.6.14's key sources gives the keys it printed", () => {
  const c = capture('p2p-prf.json');
  const key2 = key2FromPrf({
    client: {
      preMaster: logged(c, 'Client pre_master'),
      random1: logged(c, 'Client random1'),
      random2: logged(c, 'Client random2'),
    },
    server: { random1: logged(c, 'Server random1'), random2: logged(c, 'Server random2') },
    clientSessionId: sid(c.theirSessionId),
    serverSessionId: sid(c.ourSessionId),
  });
  const server = directionKeys(key2, c.cipher, true);
  // openvpn prints key2's first block as "Master Encrypt": the client's direction.
  assert.equal(
    Buffer.from(server.decryptDir.cipherKey).toString('hex'),
    logged(c, 'Master Encrypt (cipher').toString('hex'),
  );
  assert.equal(
    Buffer.from(server.encryptDir.cipherKey).toString('hex'),
    logged(c, 'Master Decrypt (cipher').toString('hex'),
  );
  const client = directionKeys(key2, c.cipher, false);
  assert.deepEqual(client.encryptDir, server.decryptDir);
  assert.deepEqual(client.decryptDir, server.encryptDir);
  assert.equal(server.encryptDir.nonceTail.length, 8);
});

test("openvpn keys: exporter keys and P2P peer-id from a captured TLS 1.3 session match openvpn 2.6.14's", () => {
  const c = capture('p2p-exporter.json');
  const secret = exporterSecretOf(c.keylog);
  const exporter = { exportKeyingMaterial: (length: number, label: string) => tls13Export(secret, label, length) };
  const server = directionKeys(key2FromExporter(exporter), c.cipher, true);
  assert.equal(
    Buffer.from(server.decryptDir.cipherKey).toString('hex'),
    logged(c, 'Master Encrypt (cipher').toString('hex'),
  );
  assert.equal(
    Buffer.from(server.encryptDir.cipherKey).toString('hex'),
    logged(c, 'Master Decrypt (cipher').toString('hex'),
  );
  assert.equal(Buffer.from(server.encryptDir.cipherKey).toString('hex'), c.ourKeys.encryptKey);
  const peerId = p2pPeerId(exporter);
  assert.equal(peerId, c.peerId);
  assert.ok(c.openvpnLog.some((l) => l.includes(`peer-id ${peerId}, cipher=${c.cipher}`)));
  assert.equal(EXPORTER_LABEL, 'EXPORTER-OpenVPN-datakeys');
  assert.equal(P2P_PEER_ID_LABEL, 'EXPORTER-OpenVPN-p2p-peerid');
});

function opensslKdfMissing(): string | false {
  try {
    execFileSync('openssl', ['kdf', '-help'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'needs openssl 3 (openssl kdf)';
  }
}

// ---- tls-crypt and tls-auth, against openvpn ------------------------------------------------

for (const name of ['p2p-tls-crypt.json', 'p2p-tls-auth.json']) {
  test(`openvpn wrap: ${name.slice(4, -5)} packets of a real openvpn 2.6.14 session unwrap, and re-wrap to the same bytes`, () => {
    const c = capture(name) as Capture & { wrap: string; staticKey: string };
    const key = Buffer.from(parseStaticKey(c.staticKey, 'captured key'));
    const crypt = c.wrap === 'tls-crypt';
    // We were the tls-server (tls-auth key-direction 0); openvpn the client (1).
    const server = crypt ? new TlsCrypt(key, true) : new TlsAuth(key, 0);
    const client = crypt ? new TlsCrypt(key, false) : new TlsAuth(key, 1);
    const ids = { in: [] as number[], out: [] as number[] };
    for (const p of c.packets) {
      const wire = Buffer.from(p.hex, 'hex');
      const [receiver, sender] = p.direction === 'in' ? [server, client] : [client, server];
      const opened = receiver.open(wire);
      assert.ok(opened, `${p.direction} packet does not authenticate`);
      const packet = decodeControlPacket(opened.plain);
      assert.equal(packet.sessionId.toString('hex'), p.direction === 'in' ? c.theirSessionId : c.ourSessionId);
      assert.equal(sender.wrapWith(opened.plain, opened.id, opened.time).toString('hex'), p.hex);
      ids[p.direction].push(opened.id);
      // The wrong side's key does not open it: each direction has its own key.
      if (c.wrap === 'tls-crypt') assert.equal(sender.open(wire), undefined);
    }
    // Both count their wrapped packets from 1, acks included.
    assert.deepEqual(
      ids.in,
      ids.in.map((_, i) => i + 1),
    );
    assert.deepEqual(
      ids.out,
      ids.out.map((_, i) => i + 1),
    );
    const first = Buffer.from(c.packets[0]!.hex, 'hex');
    assert.equal(first.length, 14 + (crypt ? 40 : 28), 'a hard reset: header, packet-id and time, tag or HMAC');
    // A flipped bit anywhere after the session id is refused; a replay is refused once accepted.
    for (let i = 9; i < first.length; i++) {
      const bad = Buffer.from(first);
      bad[i]! ^= 1;
      assert.equal(server.open(bad), undefined, `bit flipped at ${i}`);
    }
    const fresh = crypt ? new TlsCrypt(key, true) : new TlsAuth(key, 0);
    assert.ok(fresh.unwrap(first));
    assert.equal(fresh.unwrap(first), undefined);
  });
}

test('openvpn wrap: a static key file parses to its 256 bytes, anything else is refused', () => {
  const hex = Buffer.alloc(256, 0xab).toString('hex');
  const lines = hex.match(/.{32}/g)!.join('\n');
  const text = `#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n${lines}\n-----END OpenVPN Static key V1-----\n`;
  assert.deepEqual(parseStaticKey(text, 'ta.key'), new Uint8Array(256).fill(0xab));
  assert.throws(() => parseStaticKey(text.replace(/^(ab)+\n/m, ''), 'ta.key'), /ta.key: 240 key bytes: expected 256/);
  assert.throws(() => parseStaticKey('hello', 'ta.key'), /not an OpenVPN static key/);
});
