/**
 * The short form of the hostile suite (issue 13; the long form is `npm run test:hostile`,
 * bench/hostile/main.ts): the same runs with small numbers, so CI runs them on every change.
 * Real daemons in throw-away namespaces (bench/hostile/world.ts), real UDP and TCP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controlFuzz } from '../bench/hostile/control-fuzz.js';
import { fuzzRun } from '../bench/hostile/fuzz.js';
import { soak } from '../bench/hostile/soak.js';
import { tcpAttack } from '../bench/hostile/tcp-attack.js';
import { CLI, runOk, World } from '../bench/hostile/world.js';
import { missing } from './helpers/tools.js';

const skip = missing(['ip', 'ping']);
const MB = 1 << 20;
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

for (const mode of ['P2P', 'MP'] as const) {
  test(`hostile: ${env('HOSTILE_DATAGRAMS', 2_000_000)} generated datagrams at a ${mode} daemon, each accounted for once`, {
    skip,
  }, async (t) => {
    const r = await fuzzRun(mode, env('HOSTILE_DATAGRAMS', 2_000_000), 0, 2);
    t.diagnostic(JSON.stringify({ ...r, kinds: undefined }));
    assert.equal(r.alive, true, 'the daemon survives');
    assert.equal(r.sent, env('HOSTILE_DATAGRAMS', 2_000_000));
    assert.equal(
      r.accounted,
      r.delivered,
      `every datagram given to the socket in exactly one place: ${JSON.stringify(r.parts)}`,
    );
    assert.ok(r.parts['packet-ntf received']! > 0 && r.parts['peers link-rx']! > 0 && r.parts['iface malformed']! > 0);
    // The bound: a flood grows anonymous RSS by less than 10 MB, and a second flood adds
    // less than the first took (what grows is V8's young generation reaching its cap, once).
    const [first, second] = r.rssRounds as [number, number];
    const grew = (r.rssAnonAfter - r.rssAnonBefore) / MB;
    assert.ok(grew < 10, `anonymous RSS grew ${grew} MB`);
    const firstTook = (first - r.rssAnonBefore) / MB;
    const secondAdded = (second - first) / MB;
    assert.ok(secondAdded < firstTook, `the first flood took ${firstTook} MB, the second added ${secondAdded} MB`);
    assert.equal(r.fdsAfter, r.fdsBefore);
    assert.ok(r.ping.sent > 0, 'the real client pinged during the flood');
  });
}

test('hostile: fast-check over every control command against a live daemon: errors name the field', {
  skip,
}, async (t) => {
  const r = await controlFuzz(env('HOSTILE_CONTROL_RUNS', 400));
  t.diagnostic(JSON.stringify(r));
  assert.deepEqual(r.failures, []);
  assert.ok(r.requests > 100);
  assert.ok(r.alive && r.pidSame, 'the daemon still answers, same process');
});

test('hostile: TCP idle floods, trickles and open/close loops on a listen port while the real client joins', {
  skip,
}, async (t) => {
  const r = await tcpAttack(env('HOSTILE_TCP_S', 8));
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.alive, true);
  assert.ok(r.attacker.idleClosedByServer! > 0, 'idle connections beyond the cap are closed');
  assert.ok(r.attacker.openClose! > 0);
  assert.ok(r.realPeerRemotePort > 0, 'the listening peer is bound to the real client');
  assert.ok(r.realClientAttempts <= 20);
  assert.ok(r.ping.received >= r.ping.sent - 1, `the real client gets through: ${JSON.stringify(r.ping)}`);
  assert.ok(r.fdsAfter <= r.fdsBefore + 2, `fds ${r.fdsBefore} -> ${r.fdsAfter}: the attacker's connections are gone`);
});

test('hostile: soak (peers joining and leaving, key swaps, junk): RSS and fds flat', { skip }, async (t) => {
  const r = await soak(env('HOSTILE_SOAK_S', 20));
  t.diagnostic(JSON.stringify({ ...r, samples: r.samples.length }));
  assert.equal(r.alive, true);
  assert.ok(r.peersJoined > 50 && r.keySwaps > 10);
  assert.ok(r.fdsEnd <= r.fdsStart + 2, `fds ${r.fdsStart} -> ${r.fdsEnd}`);
  assert.ok(
    r.rssEnd - r.rssStart < env('HOSTILE_SOAK_RSS_MB', 20) * MB,
    `RSS ${r.rssStart / MB} -> ${r.rssEnd / MB} MB`,
  );
});

test('hostile: ovpn-cli --json get_peer piped through cat is whole past 64 KiB (400 peers)', { skip }, async () => {
  const world = await World.create('MP');
  try {
    for (let id = 2; id <= 400; id++)
      await world.addPeer(world.server, id, `10.77.1.${id % 250}`, `5.5.${8 + (id >> 8)}.${id & 255}`, 2000 + id);
    const out = await runOk('ip', [
      'netns',
      'exec',
      world.server.ns,
      'sh',
      '-c',
      `"${process.execPath}" "${CLI}" --json tun0 get_peer | cat`,
    ]);
    assert.ok(out.length > 64 * 1024, `output is ${out.length} bytes`);
    const parsed = JSON.parse(out) as unknown;
    const peers = Array.isArray(parsed) ? parsed : (parsed as { peers: unknown[] }).peers;
    assert.equal(peers.length, 400);
  } finally {
    await world.teardown();
  }
});
