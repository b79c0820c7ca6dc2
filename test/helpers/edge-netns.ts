/**
 * Runs one edge scenario for test/edge.test.ts *inside a private network
 * namespace* (the test starts it under `unshare --net`), so it can create
 * interfaces and addresses without touching the host. It only observes and
 * reports: the last stdout line is `RESULT <json>`, and the test asserts on
 * it, so a failure shows what was actually seen.
 */
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { HEADROOM, MAX_BATCH, newBatch, type PacketBatch, packetView as packet } from '../../src/core/batch.js';
import { ENDPOINT_SIZE, type Endpoint, newEndpoints, readEndpoint, writeEndpoint } from '../../src/core/endpoint.js';
import { native } from '../../src/edge/native.js';
import { TunDevice } from '../../src/edge/tun.js';
import { UdpBind } from '../../src/edge/udp.js';

const debug = (...a: unknown[]) => {
  if (process.env.EDGE_DEBUG) console.error('edge-netns:', ...a);
};
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

// Watchdog only: every wait below is on a real event; this just turns a
// hang into a readable failure instead of a test-runner timeout.
setTimeout(() => {
  console.error('edge-netns: scenario timed out');
  process.exit(3);
}, 15_000).unref();

/** Resolves with the poll status the next time dev is readable. */
function readable(dev: TunDevice | UdpBind): Promise<number> {
  return new Promise((resolve) => {
    dev.onReadable((status) => {
      dev.stopReading();
      resolve(status);
    });
  });
}

function errCode(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return String((e as { code?: unknown }).code);
  }
}

function sendUdp(sock: dgram.Socket, msg: Buffer, port: number, host: string): Promise<void> {
  return new Promise((res, rej) => sock.send(msg, port, host, (e) => (e ? rej(e) : res())));
}

/** An IPv4/UDP packet as a peer behind the tunnel would send it (UDP checksum 0 = none, legal for v4). */
function craftUdp4(src: string, sport: number, dst: string, dport: number, payload: Buffer): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64; // TTL
  p[9] = 17; // UDP
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  p.writeUInt16BE(~sum & 0xffff, 10);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + payload.length, 24);
  payload.copy(p, 28);
  return p;
}

const isUdpTo = (p: Buffer, dst: string, dport: number) =>
  p[0]! >> 4 === 4 && p[9] === 17 && p.subarray(16, 20).join('.') === dst && p.readUInt16BE(22) === dport;

/** Read from the TUN (awaiting readability) until `want` matching packets were seen. */
async function collectTun(tun: TunDevice, batch: PacketBatch, match: (p: Buffer) => boolean, want: number) {
  const found: Buffer[] = [];
  const counts: number[] = [];
  while (found.length < want) {
    // always go through the poller, so the event-loop path is what's tested
    await readable(tun);
    const n = tun.read(batch);
    if (n === 0) continue;
    counts.push(n);
    for (let i = 0; i < n; i++) {
      const p = packet(batch, i);
      if (match(p)) found.push(Buffer.from(p));
    }
  }
  return { found, counts };
}

async function scenarioTun() {
  const tun = TunDevice.open('ovt0');
  tun.mtu = 1400;
  tun.up();
  ip('addr', 'add', '10.99.0.1/24', 'dev', 'ovt0');
  const link = native().linkGet('ovt0');
  const batch = newBatch();

  // host -> TUN
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => tx.bind(0, '10.99.0.1', r));
  await sendUdp(tx, Buffer.from('hello-tun'), 9999, '10.99.0.2');
  const one = await collectTun(tun, batch, (p) => isUdpTo(p, '10.99.0.2', 9999), 1);

  // 50 datagrams queued before a single read
  for (let i = 0; i < 50; i++) await sendUdp(tx, Buffer.from(`burst-${i}`), 9998, '10.99.0.2');
  const burst = await collectTun(tun, batch, (p) => isUdpTo(p, '10.99.0.2', 9998), 50);

  // TUN -> host: a malformed packet first, to see it dropped without
  // stopping the batch, then a valid UDP packet for a socket in the namespace
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(7777, '10.99.0.1', r));
  const got = once(rx, 'message');
  const bad = Buffer.from([0x00, 1, 2, 3, 4, 5, 6, 7]);
  const good = craftUdp4('10.99.0.2', 5555, '10.99.0.1', 7777, Buffer.from('from-tun'));
  bad.copy(batch.bufs[0]!, HEADROOM);
  good.copy(batch.bufs[1]!, HEADROOM);
  batch.offsets[0] = batch.offsets[1] = HEADROOM;
  batch.sizes[0] = bad.length;
  batch.sizes[1] = good.length;
  batch.count = 2;
  const written = tun.write(batch);
  const [msg, rinfo] = (await got) as [Buffer, dgram.RemoteInfo];

  tx.close();
  rx.close();
  tun.close();
  return {
    name: tun.name,
    link,
    sent: one.found[0]!.toString('hex'),
    burstCounts: burst.counts,
    burstPayloads: burst.found.map((p) => p.subarray(28).toString()),
    written,
    writeSizes: [batch.sizes[0], batch.sizes[1]],
    received: msg.toString('hex'),
    rinfo: { address: rinfo.address, port: rinfo.port },
  };
}

/** Receive until n datagrams arrived; returns payloads, endpoints and per-call counts. */
async function collectUdp(sock: UdpBind, n: number, batch = newBatch(MAX_BATCH, 2048)) {
  const eps = newEndpoints(batch.bufs.length);
  const payloads: string[] = [];
  const endpoints: Endpoint[] = [];
  const sizes: number[] = [];
  const counts: number[] = [];
  const raw: Buffer[] = [];
  let full = false;
  while (payloads.length < n) {
    // after a full batch the shim may hold the rest of a GRO datagram: ask before waiting
    if (!full) await readable(sock);
    const k = sock.recv(batch, eps);
    full = k === batch.bufs.length;
    if (k === 0) continue;
    counts.push(k);
    for (let i = 0; i < k; i++) {
      sizes.push(batch.sizes[i]!);
      payloads.push(batch.sizes[i]! >= 0 ? packet(batch, i).toString() : '<trunc>');
      endpoints.push(readEndpoint(eps, i));
      raw.push(Buffer.from(eps.subarray(i * ENDPOINT_SIZE, (i + 1) * ENDPOINT_SIZE)));
    }
  }
  return { payloads, endpoints, sizes, counts, raw };
}

function fill(batch: PacketBatch, eps: Buffer, msgs: string[], to: (i: number) => Parameters<typeof writeEndpoint>[2]) {
  msgs.forEach((m, i) => {
    batch.offsets[i] = HEADROOM;
    batch.sizes[i] = batch.bufs[i]!.write(m, HEADROOM);
    writeEndpoint(eps, i, to(i));
  });
  batch.count = msgs.length;
}

async function scenarioUdp() {
  ip('link', 'set', 'lo', 'up');
  ip('addr', 'add', '127.0.0.2/8', 'dev', 'lo');
  const out: Record<string, unknown> = {};
  const batch = newBatch(MAX_BATCH, 2048);
  const eps = newEndpoints(batch.bufs.length);
  const msgs = Array.from({ length: 100 }, (_, i) => `pkt-${i}-${'x'.repeat(i)}`);

  // v4 -> v4, 100 in one sendmmsg
  const a = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  const b = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  fill(batch, eps, msgs, () => ({ address: '127.0.0.1', port: b.port }));
  out.v4 = { aPort: a.port, bPort: b.port, sent: a.send(batch, eps), ...(await collectUdp(b, 100)) };

  debug('// v6 -> v6');
  // v6 -> v6
  const a6 = UdpBind.open({ family: 6, address: '::1', port: 0 });
  const b6 = UdpBind.open({ family: 6, address: '::1', port: 0 });
  fill(batch, eps, msgs, () => ({ address: '::1', port: b6.port }));
  out.v6 = { aPort: a6.port, sent: a6.send(batch, eps), ...(await collectUdp(b6, 100)) };

  debug('// dual-stack "::"');
  // dual-stack "::": a v4 peer shows up as family 4, and replying straight
  // from the received slot reaches it (sent as v4-mapped)
  const d = UdpBind.open({ family: 6, address: '::', port: 0 });
  fill(batch, eps, ['to-dual'], () => ({ address: '127.0.0.1', port: d.port }));
  const sentToDual = a.send(batch, eps);
  debug('sentToDual', sentToDual);
  const atDual = await collectUdp(d, 1);
  const replyEps = Buffer.concat(atDual.raw);
  fill(batch, newEndpoints(1), ['reply-from-dual'], () => ({ address: '127.0.0.1', port: 0 }));
  const replied = d.send(batch, replyEps);
  debug('replied', replied, readEndpoint(replyEps, 0));
  const atA = await collectUdp(a, 1);
  fill(batch, eps, ['dual-to-v6'], () => ({ address: '::1', port: b6.port }));
  const dualToV6 = d.send(batch, eps);
  const atB6 = await collectUdp(b6, 1);
  out.dual = { dPort: d.port, aPort: a.port, sentToDual, atDual, replied, atA, dualToV6, atB6 };

  debug('// sticky source fro');
  // sticky source from a wildcard socket: pinned, default, and pinned to an
  // address this host doesn't have (kernel says EINVAL -> resent unpinned)
  const w = UdpBind.open({ family: 4, address: '0.0.0.0', port: 0 });
  fill(batch, eps, ['pin-127.0.0.2', 'no-pin', 'pin-gone'], (i) => ({
    address: '127.0.0.1',
    port: b.port,
    ...(i === 0 ? { local: '127.0.0.2' } : i === 2 ? { local: '192.0.2.1' } : {}),
  }));
  const stickySent = w.send(batch, eps);
  const afterSend = [0, 1, 2].map((i) => readEndpoint(eps, i));
  out.sticky = { wPort: w.port, sent: stickySent, afterSend, ...(await collectUdp(b, 3)) };

  debug('const w6 =');
  const w6 = UdpBind.open({ family: 6, address: '::', port: 0 });
  fill(batch, eps, ['pin6-::1', 'pin6-gone'], (i) => ({
    address: '::1',
    port: b6.port,
    local: i === 0 ? '::1' : '2001:db8::1',
  }));
  const sticky6Sent = w6.send(batch, eps);
  out.sticky6 = { sent: sticky6Sent, afterSend: [0, 1].map((i) => readEndpoint(eps, i)), ...(await collectUdp(b6, 2)) };

  debug('// a datagram larger');
  // a datagram larger than the receive buffer is reported as truncated
  const small = newBatch(4, HEADROOM + 16);
  fill(batch, eps, ['y'.repeat(100)], () => ({ address: '127.0.0.1', port: b.port }));
  a.send(batch, eps);
  const trunc = await collectUdp(b, 1, small);
  out.trunc = { sizes: trunc.sizes };

  for (const s of [a, b, a6, b6, d, w, w6]) s.close();
  return out;
}

async function scenarioLinkDel() {
  const tun = TunDevice.open('ovt0');
  tun.up();
  const statusP = readable(tun); // fires on EPOLLERR once the device is gone
  ip('link', 'del', 'ovt0');
  const status = await statusP;
  const batch = newBatch();
  let readErr: unknown;
  try {
    tun.read(batch);
  } catch (e) {
    readErr = e;
  }
  batch.sizes[0] = 20;
  batch.count = 1;
  const writeCode = errCode(() => tun.write(batch));
  const exists = tun.exists();
  tun.close();
  const r = readErr as { code?: string; errno?: number; message?: string } | undefined;
  return { status, readCode: r?.code, readErrno: r?.errno, readMessage: r?.message, writeCode, exists };
}

async function scenarioClose() {
  const tun = TunDevice.open('ovt0');
  const busy = errCode(() => TunDevice.open('ovt0'));
  const before = native().linkGet('ovt0');
  tun.close();
  const after = native().linkGet('ovt0');
  const secondClose = errCode(() => tun.close());
  const readAfterClose = errCode(() => tun.read(newBatch(1, 256)));
  const reopened = TunDevice.open('ovt0');
  reopened.close();

  // a holder killed with SIGKILL must not leave the name taken
  const holder = spawn(process.execPath, [fileURLToPath(import.meta.url), 'hold'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
  holder.stdout!.destroy(); // a paused pipe would otherwise keep us alive
  const busyWhileHeld = errCode(() => TunDevice.open('ovt1'));
  const heldLink = native().linkGet('ovt1');
  const exited = once(holder, 'exit');
  holder.kill('SIGKILL');
  const [, signal] = await exited;
  const afterKill = native().linkGet('ovt1');
  const recreated = TunDevice.open('ovt1');
  recreated.close();
  return {
    busy,
    before,
    after,
    secondClose,
    readAfterClose,
    reopenedName: reopened.name,
    holderSaid: line.toString().trim(),
    busyWhileHeld,
    heldLink,
    signal,
    afterKill,
    recreatedName: recreated.name,
  };
}

async function scenarioHold() {
  const tun = TunDevice.open('ovt1');
  console.log(`holding ${tun.name}`);
  tun.onReadable(() => tun.read(newBatch(4, 2048))); // keeps the process alive until killed
}

/** Payload of `size` bytes that names its packet, so order and integrity are checkable. */
function tagged(label: string, size: number): string {
  const head = `${label}:`;
  return head + 'z'.repeat(Math.max(0, size - head.length));
}

async function scenarioGso() {
  ip('link', 'set', 'lo', 'up');
  const out: Record<string, unknown> = {};
  const batch = newBatch(MAX_BATCH, 2048);
  const eps = newEndpoints(batch.bufs.length);
  const a = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  const b = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0, gro: false });
  const c = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0, gro: false });
  out.opened = { aGso: a.gso, aGro: a.gro, bGro: b.gro };

  // Mixed endpoints and sizes in one send: groups are runs of one slot and one size, a
  // shorter packet closes its group, another endpoint or a larger size starts a new one.
  const plan: [string, number, UdpBind][] = [];
  for (let i = 0; i < 10; i++) plan.push([`b${i}`, 1000, b]);
  for (let i = 0; i < 5; i++) plan.push([`c${i}`, 1000, c]);
  for (let i = 0; i < 3; i++) plan.push([`b-mid${i}`, 500, b]);
  plan.push(['b-short', 300, b]);
  for (let i = 0; i < 2; i++) plan.push([`b-after${i}`, 700, b]);
  plan.push(['b-one', 900, b]);
  for (let i = 0; i < 70; i++) plan.push([`b-many${i}`, 200, b]); // more than 64 segments
  fill(
    batch,
    eps,
    plan.map(([l, n]) => tagged(l, n)),
    (i) => ({ address: '127.0.0.1', port: plan[i]![2].port }),
  );
  const sent = a.send(batch, eps);
  debug('mixed sent', sent, a.offloads());
  const toB = plan.filter(([, , s]) => s === b).map(([l, n]) => tagged(l, n));
  const toC = plan.filter(([, , s]) => s === c).map(([l, n]) => tagged(l, n));
  const atB = await collectUdp(b, toB.length);
  debug('atB', atB.payloads.length);
  const atC = await collectUdp(c, toC.length);
  out.mixed = {
    sent,
    total: plan.length,
    bOk: JSON.stringify(atB.payloads) === JSON.stringify(toB),
    cOk: JSON.stringify(atC.payloads) === JSON.stringify(toC),
    bFrom: [...new Set(atB.endpoints.map((e) => `${e.address}:${e.port}`))],
    info: a.offloads(),
  };

  // A group to an unreachable address is dropped as a whole, marked per packet; the rest goes.
  const unreach: [string, string][] = [
    ['u0', '127.0.0.1'],
    ['u1', '192.0.2.1'],
    ['u2', '192.0.2.1'],
    ['u3', '192.0.2.1'],
    ['u4', '127.0.0.1'],
  ];
  fill(
    batch,
    eps,
    unreach.map(([l]) => tagged(l, 400)),
    (i) => ({ address: unreach[i]![1], port: b.port }),
  );
  const unreachSent = a.send(batch, eps);
  debug('unreach', unreachSent, batch.sizes.subarray(0, 5));
  out.unreach = {
    sent: unreachSent,
    sizes: Array.from(batch.sizes.subarray(0, 5)),
    got: (await collectUdp(b, 2)).payloads.map((p) => p.split(':')[0]),
  };

  // A run pinned to a source address this host does not have: IPv6 says EINVAL, which is
  // not the segmentation's fault; resent unpinned, and GSO stays on for that size.
  const w6 = UdpBind.open({ family: 6, address: '::', port: 0 });
  const b6 = UdpBind.open({ family: 6, address: '::1', port: 0, gro: false });
  const pinned = Array.from({ length: 3 }, (_, i) => tagged(`p${i}`, 600));
  fill(batch, eps, pinned, () => ({ address: '::1', port: b6.port, local: '2001:db8::1' }));
  const pinnedSent = w6.send(batch, eps);
  const afterPinned = [0, 1, 2].map((i) => readEndpoint(eps, i).local ?? null);
  const atB6 = await collectUdp(b6, pinned.length);
  out.pinned = {
    sent: pinnedSent,
    ok: JSON.stringify(atB6.payloads) === JSON.stringify(pinned),
    afterPinned,
    info: w6.offloads(),
  };
  w6.close();
  b6.close();

  // GRO: one GSO send of 41 packets arrives coalesced and is split into slots; a 16-slot
  // batch takes it in three calls, the rest waiting in the shim between them.
  const g = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  const groMsgs = Array.from({ length: 41 }, (_, i) => tagged(`g${i}`, i === 40 ? 100 : 1200));
  fill(batch, eps, groMsgs, () => ({ address: '127.0.0.1', port: g.port }));
  const groSent = a.send(batch, eps);
  debug('gro sent', groSent);
  const atG = await collectUdp(g, groMsgs.length, newBatch(16, 2048));
  out.gro = {
    sent: groSent,
    ok: JSON.stringify(atG.payloads) === JSON.stringify(groMsgs),
    counts: atG.counts,
    sizes: atG.sizes,
    from: [...new Set(atG.endpoints.map((e) => `${e.address}:${e.port}`))],
    aPort: a.port,
    info: g.offloads(),
  };

  // Fallback: segments larger than the path MTU are refused (EINVAL); they go out one by
  // one (fragmented), the socket remembers the size, and smaller groups still use GSO.
  ip('link', 'set', 'lo', 'mtu', '1300');
  const big = Array.from({ length: 10 }, (_, i) => tagged(`big${i}`, 1400));
  fill(batch, eps, big, () => ({ address: '127.0.0.1', port: b.port }));
  const bigSent = a.send(batch, eps);
  debug('big sent', bigSent, a.offloads());
  const atBig = await collectUdp(b, big.length);
  const afterBig = a.offloads();
  fill(batch, eps, big, () => ({ address: '127.0.0.1', port: b.port }));
  const bigSent2 = a.send(batch, eps);
  const atBig2 = await collectUdp(b, big.length);
  const small = Array.from({ length: 10 }, (_, i) => tagged(`small${i}`, 1000));
  fill(batch, eps, small, () => ({ address: '127.0.0.1', port: b.port }));
  const smallSent = a.send(batch, eps);
  const atSmall = await collectUdp(b, small.length);
  out.fallback = {
    sent: [bigSent, bigSent2, smallSent],
    ok:
      [atBig.payloads, atBig2.payloads].every((p) => JSON.stringify(p) === JSON.stringify(big)) &&
      JSON.stringify(atSmall.payloads) === JSON.stringify(small),
    afterBig,
    end: a.offloads(),
  };

  // Switched off: no grouping at all.
  const off = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0, gso: false, gro: false });
  fill(batch, eps, small, () => ({ address: '127.0.0.1', port: b.port }));
  const offSent = off.send(batch, eps);
  await collectUdp(b, small.length);
  out.off = { opened: { gso: off.gso, gro: off.gro }, sent: offSent, info: off.offloads() };

  for (const s of [a, b, c, g, off]) s.close();
  return out;
}

/**
 * A GSO group sent from a pinned source address that has since vanished: the retry must keep
 * the packets apart (UDP_SEGMENT), not send them glued into one datagram.
 */
async function scenarioVanishedSource() {
  ip('link', 'set', 'lo', 'up');
  ip('addr', 'add', '10.9.9.9/32', 'dev', 'lo');
  const a = UdpBind.open({ family: 4, address: '0.0.0.0', port: 0 });
  const b = UdpBind.open({ family: 4, address: '127.0.0.1', port: 0 });
  const batch = newBatch(MAX_BATCH, 2048);
  const eps = newEndpoints(MAX_BATCH);
  const group = ['a', 'b', 'c', 'd'].map((c) => c.repeat(100));
  const send = () => {
    fill(batch, eps, group, () => ({ address: '127.0.0.1', port: b.port, local: '10.9.9.9' }));
    return a.send(batch, eps);
  };
  const before = { sent: send(), ...(await collectUdp(b, 4)) };
  ip('addr', 'del', '10.9.9.9/32', 'dev', 'lo');
  const sent = send();
  const after = await collectUdp(b, 4);
  a.close();
  b.close();
  return {
    before: { sent: before.sent, sizes: before.sizes, from: before.endpoints.map((e) => e.address) },
    after: { sent, sizes: after.sizes, payloads: after.payloads.map((p) => p[0]), unpinned: eps[20] === 0 },
  };
}

const scenarios: Record<string, () => Promise<unknown>> = {
  'vanished-source': scenarioVanishedSource,
  gso: scenarioGso,
  tun: scenarioTun,
  udp: scenarioUdp,
  linkdel: scenarioLinkDel,
  close: scenarioClose,
  hold: scenarioHold,
};

const name = process.argv[2] ?? '';
const run = scenarios[name];
if (!run) {
  console.error(`unknown scenario ${name}`);
  process.exit(2);
}
const result = await run();
if (name !== 'hold') console.log(`RESULT ${JSON.stringify(result)}`);
