/**
 * One fuzz run: generated datagrams (datagrams.ts) at a P2P or MP daemon over real UDP, while
 * the real client pings through the tunnel. Afterwards every datagram the server's socket was
 * given (sent, plus the real client's own, minus what the kernel dropped for a full receive
 * buffer) must be in exactly one place: an interface drop counter for packets no peer owns,
 * a peer's link-rx count (which each of its drop counters, and every accepted packet, is part
 * of), or handed up to the control plane (packet-ntf seen by our subscriber, missed by it, or
 * pushed out of the control queue).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyContext } from '../../src/core/index.js';
import { drop } from '../../test/helpers/behaviour-harness.js';
import { ControlLine } from './control-line.js';
import { buildPool, KINDS } from './datagrams.js';
import type { FloodFile } from './flood.js';
import {
  alive,
  background,
  keyconf,
  keyPair,
  PORT,
  pingStats,
  type Side,
  usage,
  World,
  waitUntil,
  worker,
} from './world.js';

export interface FuzzResult {
  mode: 'P2P' | 'MP';
  kinds: readonly string[];
  sent: number;
  sendErrors: number;
  seconds: number;
  legit: number;
  rcvbufErrors: number;
  inErrors: number;
  inDatagrams: number;
  delivered: number;
  accounted: number;
  parts: Record<string, number>;
  peerDrops: Record<string, number>;
  rssBefore: number;
  rssAfter: number;
  /** The anonymous part of RSS (see usage()). */
  rssAnonBefore: number;
  rssAnonAfter: number;
  /** Anonymous RSS right after each flood round. */
  rssRounds: number[];
  fdsBefore: number;
  fdsAfter: number;
  ping: { sent: number; received: number };
  alive: boolean;
}

/** The server-side places a received datagram can end up in (see the file comment). */
async function places(side: Side): Promise<Record<string, number>> {
  const iface = await side.control.ok('iface-get');
  const { peers } = await side.control.ok('peer-get');
  const d = iface.drops as Record<string, number>;
  let linkRx = 0;
  for (const p of peers as Record<string, number>[]) linkRx += p['link-rx-packets']!;
  return {
    'iface malformed': drop(d, 'malformed'),
    'iface data-v1': drop(d, 'dataV1'),
    'iface unknown-peer': drop(d, 'unknownPeer'),
    'iface control (pushed out)': drop(d, 'control'),
    'peers link-rx': linkRx,
    'control queue': iface['control-queue'] as number,
    'notifications missed': iface['notifications-dropped'] as number,
  };
}

/** The peers' drop counters added up: where the peers' link-rx packets went (for the table). */
async function peerDrops(side: Side): Promise<Record<string, number>> {
  const { peers } = await side.control.ok('peer-get');
  const total: Record<string, number> = {};
  for (const p of peers as { drops: Record<string, number>; 'vpn-rx-packets': number }[]) {
    for (const [k, v] of Object.entries(p.drops)) total[k] = (total[k] ?? 0) + v;
    total['vpn-rx (accepted)'] = (total['vpn-rx (accepted)'] ?? 0) + p['vpn-rx-packets'];
  }
  return total;
}

const delta = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(Object.keys(b).map((k) => [k, b[k]! - (a[k] ?? 0)]));

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

async function clientTx(world: World): Promise<number> {
  const { peer } = await world.client.control.ok('peer-get', { peer: { id: 1 } });
  return peer['link-tx-packets'] as number;
}

/**
 * Gives the server's peer 1 the attacker's key (key-id 1, secondary slot: a replay window of
 * its own, so the real client's packets are never taken for replays), writes the pool for
 * flood.js and sends its primes: they authenticate (the peer floats to the attacker), then the
 * real client's ping takes the peer back. From then on the pool's valid packets are replays.
 */
export async function armAttacker(world: World, dir: string, pps = 0): Promise<string> {
  const { server, client } = world;
  const [fuzzServer, fuzzClient] = keyPair('AES-256-GCM', 1);
  await server.control.ok('key-new', keyconf(1, 'secondary', fuzzServer));
  const pool = buildPool(new KeyContext(fuzzClient), 1, client.vpn, server.vpn);
  const file: FloodFile = {
    target: server.addr,
    port: PORT,
    primes: pool.primes.map((b) => b.toString('base64')),
    datagrams: pool.datagrams.map((b) => b.toString('base64')),
    pps,
  };
  const path = join(dir, 'pool.json');
  writeFileSync(path, JSON.stringify(file));
  await worker(client.ns, 'flood.js', [path, '0']);
  await world.ping(client, server, 3);
  await waitUntil('the peer back at the real client', async () => {
    const { peer } = await server.control.ok('peer-get', { peer: { id: 1 } });
    return peer['remote-port'] === PORT;
  });
  return path;
}

/**
 * `count` datagrams in `rounds` floods one after the other (RSS noted after each: memory that a
 * first flood takes and a second does not add to is a high-water mark, not a leak).
 */
export async function fuzzRun(mode: 'P2P' | 'MP', count: number, pps = 0, rounds = 1): Promise<FuzzResult> {
  const world = await World.create(mode);
  const dir = mkdtempSync(join(tmpdir(), 'hx-fuzz-'));
  const watcher = await ControlLine.open(world.server.socketPath);
  try {
    const { server, client } = world;
    const path = await armAttacker(world, dir, pps);
    await watcher.ok('subscribe');
    const before = {
      drops: await peerDrops(server),
      places: await places(server),
      udp: await world.udp(server),
      tx: await clientTx(world),
    };
    const ntfBefore = watcher.ntfs.get('packet-ntf') ?? 0;
    const use0 = usage(server.pid);
    const ping = background(client.ns, ['ping', '-n', '-q', '-i', '0.05', server.vpn]);
    const flood = { sent: 0, errors: 0, seconds: 0 };
    const rssRounds: number[] = [];
    try {
      for (let r = 0; r < rounds; r++) {
        const part = Math.floor(count / rounds) + (r < count % rounds ? 1 : 0);
        const one = await worker<typeof flood>(client.ns, 'flood.js', [path, String(part)]);
        flood.sent += one.sent;
        flood.errors += one.errors;
        flood.seconds += one.seconds;
        rssRounds.push(usage(server.pid).rssAnon);
      }
    } finally {
      ping.child.kill('SIGINT');
    }
    const pingOut = await ping.output;
    // Settled: the control queue drained and the counters stopped moving.
    let last = '';
    await waitUntil(
      'the counters to settle',
      async () => {
        const now = await places(server);
        const same = JSON.stringify(now) === last && now['control queue'] === 0;
        last = JSON.stringify(now);
        return same;
      },
      30_000,
    );
    const after = {
      drops: await peerDrops(server),
      places: await places(server),
      udp: await world.udp(server),
      tx: await clientTx(world),
    };
    const use1 = usage(server.pid);
    const parts: Record<string, number> = {};
    for (const k of Object.keys(after.places)) parts[k] = after.places[k]! - before.places[k]!;
    parts['packet-ntf received'] = (watcher.ntfs.get('packet-ntf') ?? 0) - ntfBefore;
    delete parts['control queue'];
    const rcvbufErrors = after.udp.RcvbufErrors! - before.udp.RcvbufErrors!;
    const inErrors = after.udp.InErrors! - before.udp.InErrors!;
    const legit = after.tx - before.tx;
    return {
      mode,
      kinds: KINDS,
      sent: flood.sent,
      sendErrors: flood.errors,
      seconds: flood.seconds,
      legit,
      rcvbufErrors,
      inErrors,
      inDatagrams: after.udp.InDatagrams! - before.udp.InDatagrams!,
      delivered: flood.sent + legit - inErrors,
      accounted: sum(parts),
      parts,
      peerDrops: delta(before.drops, after.drops),
      rssBefore: use0.rss,
      rssAfter: use1.rss,
      rssAnonBefore: use0.rssAnon,
      rssAnonAfter: use1.rssAnon,
      rssRounds,
      fdsBefore: use0.fds,
      fdsAfter: use1.fds,
      ping: pingStats(pingOut),
      alive: alive(server.pid),
    };
  } finally {
    watcher.close();
    rmSync(dir, { recursive: true, force: true });
    await world.teardown();
  }
}
