/**
 * TUN offloads without a TUN (core/gso.ts): cutting a TCP super-packet into segments, merging
 * segments back, checksums; every header byte is checked against a plain reference.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { HEADROOM, newBatch, type PacketBatch } from '../src/core/batch.js';
import { sum16, sum16Words, useRangeSum } from '../src/core/checksum.js';
import {
  coalesceForTun,
  completeChecksum,
  GroTable,
  GSO_NONE,
  GSO_TCPV4,
  GSO_TCPV6,
  GSO_UDP_L4,
  segmentCount,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  writeSegment,
} from '../src/core/gso.js';
import { native } from '../src/edge/native.js';

/** Reference ones' complement sum, the obvious way. */
function refSum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudo(ip: Buffer, l4Length: number, proto = 6): Buffer {
  const v6 = ip[0]! >>> 4 === 6;
  const addrs = v6 ? ip.subarray(8, 40) : ip.subarray(12, 20);
  const tail = Buffer.alloc(v6 ? 8 : 4);
  if (v6) {
    tail.writeUInt32BE(l4Length, 0);
    tail[7] = proto;
  } else {
    tail[1] = proto;
    tail.writeUInt16BE(l4Length, 2);
  }
  return Buffer.concat([addrs, tail]);
}

/** Whether an IP/TCP packet's TCP checksum (and IPv4 header checksum) verify. */
function checksumsOk(pkt: Buffer): boolean {
  const v6 = pkt[0]! >>> 4 === 6;
  const ipLen = v6 ? 40 : (pkt[0]! & 15) * 4;
  if (!v6 && refSum(pkt.subarray(0, ipLen)) !== 0xffff) return false;
  return refSum(Buffer.concat([pseudo(pkt, pkt.length - ipLen), pkt.subarray(ipLen)])) === 0xffff;
}

interface Shape {
  v6: boolean;
  payload: Buffer;
  gso: number;
  flags: number;
  seq: number;
  id: number;
  options?: Buffer;
}

const SRC4 = [10, 0, 0, 1];
const DST4 = [10, 0, 0, 2];

/** A packet of `l4Length` bytes after a valid IP header (fd00::1 → fd00::2, or SRC4 → DST4 with `id`). */
function ipPacket(v6: boolean, proto: number, l4Length: number, id: number, dontFragment: boolean): Buffer {
  const ipLen = v6 ? 40 : 20;
  const pkt = Buffer.alloc(ipLen + l4Length);
  if (v6) {
    pkt[0] = 0x60;
    pkt.writeUInt16BE(l4Length, 4);
    pkt[6] = proto;
    pkt[7] = 64;
    pkt[8] = 0xfd;
    pkt[23] = 1;
    pkt[24] = 0xfd;
    pkt[39] = 2;
  } else {
    pkt[0] = 0x45;
    pkt.writeUInt16BE(pkt.length, 2);
    pkt.writeUInt16BE(id, 4);
    if (dontFragment) pkt[6] = 0x40;
    pkt[8] = 64;
    pkt[9] = proto;
    pkt.set(SRC4, 12);
    pkt.set(DST4, 16);
    pkt.writeUInt16BE(~refSum(pkt.subarray(0, 20)) & 0xffff, 10);
  }
  return pkt;
}

/** A plain TCP/IP packet with valid checksums. */
function tcpPacket(s: Shape): Buffer {
  const opts = s.options ?? Buffer.alloc(0);
  const tcpLen = 20 + opts.length;
  const ipLen = s.v6 ? 40 : 20;
  const pkt = ipPacket(s.v6, 6, tcpLen + s.payload.length, s.id, true);
  const t = ipLen;
  pkt.writeUInt16BE(40000, t);
  pkt.writeUInt16BE(5201, t + 2);
  pkt.writeUInt32BE(s.seq >>> 0, t + 4);
  pkt.writeUInt32BE(0x01020304, t + 8);
  pkt[t + 12] = (tcpLen / 4) << 4;
  pkt[t + 13] = s.flags;
  pkt.writeUInt16BE(502, t + 14);
  opts.copy(pkt, t + 20);
  s.payload.copy(pkt, ipLen + tcpLen);
  pkt.writeUInt16BE(~refSum(Buffer.concat([pseudo(pkt, pkt.length - ipLen), pkt.subarray(ipLen)])) & 0xffff, t + 16);
  return pkt;
}

/** What the kernel hands us with TSO: virtio_net_hdr + super-packet, TCP checksum = pseudo-header sum only. */
function superPacket(s: Shape): Buffer {
  const pkt = tcpPacket(s);
  const ipLen = s.v6 ? 40 : 20;
  const tcpLen = 20 + (s.options?.length ?? 0);
  pkt.writeUInt16BE(refSum(pseudo(pkt, pkt.length - ipLen)), ipLen + 16);
  const hdr = Buffer.alloc(VNET_HDR_LEN);
  hdr[0] = VNET_F_NEEDS_CSUM;
  hdr[1] = s.v6 ? GSO_TCPV6 : GSO_TCPV4;
  hdr.writeUInt16LE(ipLen + tcpLen, 2);
  hdr.writeUInt16LE(s.gso, 4);
  hdr.writeUInt16LE(ipLen, 6);
  hdr.writeUInt16LE(16, 8);
  return Buffer.concat([hdr, pkt]);
}

/** Cuts a raw read (header + packet) into plain packets, as the transmit path does. */
function cut(raw: Buffer): Buffer[] {
  const src = Buffer.alloc(raw.length + 64);
  raw.copy(src, 32);
  const n = segmentCount(src, 32, raw.length);
  const out: Buffer[] = [];
  const dst = Buffer.alloc(70000);
  for (let k = 0; k < n; k++) {
    const size = writeSegment(src, 32, raw.length, k, dst, HEADROOM);
    out.push(Buffer.from(dst.subarray(HEADROOM, HEADROOM + size)));
  }
  return out;
}

/** A receive batch holding these plain packets at the offset decryption leaves them (HEADROOM+24). */
function rxBatch(pkts: Buffer[]): PacketBatch {
  const b = newBatch(Math.max(1, pkts.length));
  pkts.forEach((p, i) => {
    b.offsets[i] = HEADROOM + 24;
    p.copy(b.bufs[i]!, HEADROOM + 24);
    b.sizes[i] = p.length;
  });
  b.count = pkts.length;
  return b;
}

function written(b: PacketBatch): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.count; i++)
    out.push(Buffer.from(b.bufs[i]!.subarray(b.offsets[i]!, b.offsets[i]! + b.sizes[i]!)));
  return out;
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

describe('gso: checksums', () => {
  // The word loop, the shim's sum, and sum16 with the shim installed as the edge installs it.
  const viaShim: typeof sum16 = (buf, start, end, acc) => {
    useRangeSum(native().inetSum);
    try {
      return sum16(buf, start, end, acc);
    } finally {
      useRangeSum(null);
    }
  };
  const SUMS: [string, typeof sum16][] = [
    ['word loop', sum16Words],
    ['shim', (buf, start, end, acc) => native().inetSum(buf, start, end, acc)],
    ['sum16 with the shim installed', viaShim],
  ];

  for (const [name, sum] of SUMS) {
    test(`${name}: matches the reference at every alignment and length`, () => {
      const data = bytes(70000, 3);
      for (const [start, len] of [
        [0, 0],
        [0, 1],
        [1, 7],
        [2, 63],
        [1, 64],
        [3, 65],
        [3, 255],
        [2, 256],
        [3, 1400],
        [2, 40001],
        [5, 65535],
      ] as const) {
        assert.equal(
          sum(data, start, start + len, 0),
          refSum(data.subarray(start, start + len)),
          `start ${start} len ${len}`,
        );
      }
    });

    test(`${name}: agrees with the reference on views into shared memory, any offset, length and carry-in`, () => {
      // Views at odd byte offsets of a few slabs exercise the word loop's alignment, the cached
      // DataViews being swapped between slabs, and the carry-in folded with the result.
      const slabs = [bytes(3000, 5), bytes(3000, 9), bytes(3000, 11)];
      fc.assert(
        fc.property(
          fc.nat(2),
          fc.nat(40),
          fc.nat(80),
          fc.nat(2800),
          fc.nat(0xffff),
          (which, viewAt, start, len, acc) => {
            const view = slabs[which]!.subarray(viewAt);
            const end = Math.min(start + len, view.length);
            let expected = acc + refSum(view.subarray(start, end));
            while (expected > 0xffff) expected = (expected & 0xffff) + (expected >>> 16);
            assert.equal(sum(view, start, end, acc), expected);
          },
        ),
      );
    });
  }

  test('the shim refuses a range outside its buffer and anything but bytes', () => {
    const buf = Buffer.alloc(100);
    assert.throws(() => native().inetSum(buf, 10, 101, 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => native().inetSum(buf, 10, 5, 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => native().inetSum(buf, -1, 5, 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => native().inetSum(buf, 0, 5, 0x10000), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => native().inetSum(new Uint16Array(8) as never, 0, 4, 0), /buf must be a Uint8Array/);
  });

  test('completeChecksum finishes a NEEDS_CSUM UDP packet', () => {
    const ip = Buffer.from('4500002000004000401100000a0000010a000002303900350000000068656c6c6f2121', 'hex').subarray(
      0,
      32,
    );
    const udpLen = 12;
    ip.writeUInt16BE(udpLen, 24);
    const ps = refSum(Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, 0, udpLen])]));
    ip.writeUInt16BE(ps, 26);
    const raw = Buffer.concat([Buffer.from([VNET_F_NEEDS_CSUM, GSO_NONE, 0, 0, 0, 0, 20, 0, 6, 0]), ip]);
    assert.equal(completeChecksum(raw, 0, raw.length), true);
    const c = raw.readUInt16BE(VNET_HDR_LEN + 26);
    ip.writeUInt16BE(0, 26);
    const expect =
      ~refSum(Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, 0, udpLen]), ip.subarray(20)])) & 0xffff;
    assert.equal(c, expect || 0xffff);
    raw.writeUInt16LE(100, 8);
    assert.equal(completeChecksum(raw, 0, raw.length), false, 'csum_offset outside the packet');
  });
});

describe('gso: segmenting a TCP super-packet', () => {
  for (const v6 of [false, true]) {
    test(`IPv${v6 ? 6 : 4}: every header byte of every segment`, () => {
      const payload = bytes(4000);
      const options = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
      const shape: Shape = {
        v6,
        payload,
        gso: 1448,
        flags: 0x80 | 0x10 | 0x08 | 0x01,
        seq: 0xfffffc00,
        id: 0xfffe,
        options,
      };
      const raw = superPacket(shape);
      assert.equal(segmentCount(raw, 0, raw.length), 3);
      const segs = cut(raw);
      assert.equal(segs.length, 3);
      segs.forEach((seg, k) => {
        const len = k < 2 ? 1448 : 4000 - 2 * 1448;
        const last = k === 2;
        const expectFlags = 0x10 | (k === 0 ? 0x80 : 0) | (last ? 0x08 | 0x01 : 0);
        const expected = tcpPacket({
          v6,
          payload: payload.subarray(k * 1448, k * 1448 + len),
          gso: 0,
          flags: expectFlags,
          seq: (0xfffffc00 + k * 1448) >>> 0,
          id: (0xfffe + k) & 0xffff,
          options,
        });
        assert.deepEqual(seg, expected, `segment ${k}`);
        assert.ok(checksumsOk(seg));
      });
    });
  }

  test('a packet the kernel did not segment counts as one; unknown GSO types as none', () => {
    const raw = Buffer.concat([
      Buffer.alloc(VNET_HDR_LEN),
      tcpPacket({ v6: false, payload: bytes(10), gso: 0, flags: 0x18, seq: 1, id: 1 }),
    ]);
    assert.equal(segmentCount(raw, 0, raw.length), 1);
    raw[1] = 5; // UDP_L4: not asked for
    assert.equal(segmentCount(raw, 0, raw.length), 0);
    raw[1] = GSO_TCPV6; // but the packet is IPv4
    assert.equal(segmentCount(raw, 0, raw.length), 0);
  });
});

describe('gso: coalescing for the TUN', () => {
  const seg = (k: number, payload: Buffer, flags = 0x10, v6 = false): Buffer =>
    tcpPacket({ v6, payload, gso: 0, flags, seq: 1000 + k * 1000, id: k, options: undefined });

  test('in-order segments of one flow become one super-packet with a GSO header', () => {
    const payload = bytes(3500);
    const pkts = [0, 1, 2, 3].map((k) =>
      seg(k, payload.subarray(k * 1000, Math.min(3500, (k + 1) * 1000)), k === 3 ? 0x18 : 0x10),
    );
    const b = rxBatch(pkts);
    assert.equal(coalesceForTun(b, new GroTable(), true), 1);
    const [out] = written(b);
    const hdr = out!.subarray(0, VNET_HDR_LEN);
    assert.deepEqual([...hdr], [VNET_F_NEEDS_CSUM, GSO_TCPV4, 40, 0, 0xe8, 0x03, 20, 0, 16, 0]);
    const ip = out!.subarray(VNET_HDR_LEN);
    assert.equal(ip.readUInt16BE(2), 40 + 3500);
    assert.equal(refSum(ip.subarray(0, 20)), 0xffff, 'IPv4 header checksum');
    assert.equal(ip[33], 0x18, 'PSH of the last segment kept');
    assert.deepEqual(ip.subarray(40), payload);
    assert.equal(ip.readUInt16BE(36), refSum(pseudo(ip, 20 + 3500)), 'TCP checksum field holds the pseudo-header sum');
    // What the kernel would do with it: segment again; we get the original packets back.
    assert.deepEqual(
      cut(out!),
      pkts.map((p, k) => (k === 3 ? p : p)),
    );
  });

  test('other packets get a zero header; flows, gaps, bad checksums and flags are not merged', () => {
    const p = bytes(500);
    const other = tcpPacket({ v6: false, payload: p, gso: 0, flags: 0x10, seq: 5000, id: 9, options: undefined });
    other[15] = 9; // another source address
    other.writeUInt16BE(
      ~refSum(Buffer.concat([other.subarray(0, 10), Buffer.alloc(2), other.subarray(12, 20)])) & 0xffff,
      10,
    );
    const o2 = tcpPacket({ v6: false, payload: p, gso: 0, flags: 0x10, seq: 5000, id: 9, options: undefined });
    o2[19] = 7;
    const bad = seg(1, p);
    bad[60] = (bad[60]! + 1) & 0xff; // corrupt payload
    const udp = Buffer.from(seg(0, p));
    udp[9] = 17;
    const pkts = [seg(0, bytes(1000)), bad, seg(3, p), seg(4, p, 0x11), udp];
    const b = rxBatch(pkts);
    assert.equal(coalesceForTun(b, new GroTable(), true), pkts.length);
    written(b).forEach((w, i) => {
      assert.deepEqual([...w.subarray(0, VNET_HDR_LEN)], new Array(VNET_HDR_LEN).fill(0));
      assert.deepEqual(w.subarray(VNET_HDR_LEN), pkts[i]);
    });
    const b2 = rxBatch([seg(0, bytes(1000)), o2, seg(1, bytes(1000))]);
    assert.equal(coalesceForTun(b2, new GroTable(), true), 2, 'interleaved flows still merge');
    const b3 = rxBatch([seg(0, bytes(1000)), seg(1, bytes(1000))]);
    assert.equal(coalesceForTun(b3, new GroTable(), false), 2, 'gro off: headers only');
  });

  test('IPv6 segments merge', () => {
    const b = rxBatch([0, 1].map((k) => seg(k, bytes(1000, k), 0x10, true)));
    assert.equal(coalesceForTun(b, new GroTable(), true), 1);
    const [out] = written(b);
    assert.equal(out![1], GSO_TCPV6);
    assert.equal(out!.readUInt16BE(VNET_HDR_LEN + 4), 20 + 2000);
  });
});

describe('gso: coalescing UDP for a TUN that takes UDP super-packets', () => {
  /** A plain UDP/IP datagram with valid checksums, IPv4 id `id`. */
  const dgram = (payload: Buffer, v6 = false, id = 0, srcPort = 40000): Buffer => {
    const ipLen = v6 ? 40 : 20;
    const pkt = ipPacket(v6, 17, 8 + payload.length, id, false);
    pkt.writeUInt16BE(srcPort, ipLen);
    pkt.writeUInt16BE(5201, ipLen + 2);
    pkt.writeUInt16BE(8 + payload.length, ipLen + 4);
    payload.copy(pkt, ipLen + 8);
    const c = ~refSum(Buffer.concat([pseudo(pkt, pkt.length - ipLen, 17), pkt.subarray(ipLen)])) & 0xffff;
    pkt.writeUInt16BE(c || 0xffff, ipLen + 6);
    return pkt;
  };
  /** What the kernel does with a UDP super-packet: the datagrams, each with its own lengths and checksums. */
  const cutUdp = (out: Buffer): Buffer[] => {
    const gso = out.readUInt16LE(4);
    const ip = out.subarray(VNET_HDR_LEN);
    const v6 = ip[0]! >>> 4 === 6;
    const ipLen = v6 ? 40 : 20;
    const data = ip.subarray(ipLen + 8);
    const parts: Buffer[] = [];
    for (let at = 0, k = 0; at < data.length; at += gso, k++) {
      const payload = data.subarray(at, Math.min(data.length, at + gso));
      parts.push(dgram(payload, v6, v6 ? 0 : ip.readUInt16BE(4) + k, ip.readUInt16BE(ipLen)));
    }
    return parts;
  };

  for (const v6 of [false, true]) {
    test(`IPv${v6 ? 6 : 4}: equal datagrams of one flow, the last shorter, become one UDP_L4 super-packet`, () => {
      const pkts = [0, 1, 2].map((k) => dgram(bytes(100, k), v6, 7 + k));
      pkts.push(dgram(bytes(60, 3), v6, 10));
      const b = rxBatch(pkts);
      assert.equal(coalesceForTun(b, new GroTable(), true, true), 1);
      const [out] = written(b);
      const ipLen = v6 ? 40 : 20;
      assert.deepEqual(
        [...out!.subarray(0, VNET_HDR_LEN)],
        [VNET_F_NEEDS_CSUM, GSO_UDP_L4, ipLen + 8, 0, 100, 0, ipLen, 0, 6, 0],
      );
      const ip = out!.subarray(VNET_HDR_LEN);
      assert.equal(ip.length, ipLen + 8 + 360);
      if (v6) assert.equal(ip.readUInt16BE(4), 8 + 360);
      else {
        assert.equal(ip.readUInt16BE(2), 20 + 8 + 360);
        assert.equal(refSum(ip.subarray(0, 20)), 0xffff, 'IPv4 header checksum');
      }
      assert.equal(ip.readUInt16BE(ipLen + 4), 8 + 360, 'UDP length: the whole');
      assert.equal(ip.readUInt16BE(ipLen + 6), refSum(pseudo(ip, 8 + 360, 17)), 'UDP checksum: the pseudo-header sum');
      assert.deepEqual(cutUdp(out!), pkts, 'cut as the kernel does: the very datagrams');
    });
  }

  test('not merged: another size after a short one, no checksum, a bad checksum, another flow; order kept', () => {
    const a = (k: number, n = 100) => dgram(bytes(n, k), false, k);
    const noSum = a(5);
    noSum.writeUInt16BE(0, 26);
    const bad = a(6);
    bad[40] = (bad[40]! + 1) & 0xff;
    const other = dgram(bytes(100, 9), false, 9, 40001);
    // a0+a1 merge; other flow interleaved merges with nothing; a2 short ends the run; a3 starts
    // anew; noSum and bad go alone and end a3's run, so a4 may not jump ahead of them.
    const pkts = [a(0), other, a(1), a(2, 50), a(3), noSum, bad, a(4)];
    const b = rxBatch(pkts);
    assert.equal(coalesceForTun(b, new GroTable(), true, true), 6);
    const outs = written(b);
    assert.deepEqual(cutUdp(outs[0]!), [a(0), a(1), a(2, 50)]);
    assert.deepEqual(
      outs.slice(1).map((w) => w[1]),
      [GSO_NONE, GSO_NONE, GSO_NONE, GSO_NONE, GSO_NONE],
    );
    assert.deepEqual(
      outs.slice(1).map((w) => w.subarray(VNET_HDR_LEN)),
      [other, a(3), noSum, bad, a(4)],
    );
    const b2 = rxBatch([a(0), a(1)]);
    assert.equal(coalesceForTun(b2, new GroTable(), true, false), 2, 'udpGro off: headers only');
  });

  test('at most 64 datagrams in one super-packet', () => {
    const pkts = Array.from({ length: 70 }, (_, k) => dgram(bytes(64, k), false, k));
    const b = rxBatch(pkts);
    assert.equal(coalesceForTun(b, new GroTable(), true, true), 2);
    const outs = written(b);
    assert.deepEqual([...outs.flatMap((o) => cutUdp(o))], pkts);
    assert.equal(cutUdp(outs[0]!).length, 64);
  });
});

describe('gso: properties', () => {
  test('segment then coalesce gives the payload back, and segmenting that gives the same segments', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 1, max: 20000 }),
        fc.integer({ min: 200, max: 1460 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.boolean(),
        (v6, len, gso, seq, psh) => {
          const payload = bytes(len, seq & 0xff);
          const raw = superPacket({ v6, payload, gso, flags: 0x10 | (psh ? 0x08 : 0), seq, id: seq & 0xffff });
          const segs = cut(raw);
          assert.equal(segs.length, Math.ceil(len / gso));
          for (const s of segs) assert.ok(checksumsOk(s));
          const b = rxBatch(segs);
          assert.equal(coalesceForTun(b, new GroTable(), true), 1);
          const [out] = written(b);
          const ipLen = v6 ? 40 : 20;
          assert.deepEqual(out!.subarray(VNET_HDR_LEN + ipLen + 20), payload);
          if (segs.length > 1) assert.deepEqual(cut(out!), segs);
        },
      ),
      { numRuns: 200 },
    );
  });
});
