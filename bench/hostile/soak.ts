/**
 * The soak: for `seconds`, an MP server lives through what a busy one sees: peers joining and
 * leaving (each keyed, some swapping keys, then deleted), the real client and the server
 * swapping keys now and then, and junk from the attacker in between, while the real client
 * pings through the tunnel. RSS and open fds of the server are sampled once per round; flat
 * means the last sample is within a bound of the first one taken after warm-up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { armAttacker } from './fuzz.js';
import { alive, background, keyconf, keyPair, pingStats, sleep, usage, World, worker } from './world.js';

export interface SoakSample {
  t: number;
  rss: number;
  rssAnon: number;
  fds: number;
  peers: number;
}

export interface SoakResult {
  seconds: number;
  rounds: number;
  peersJoined: number;
  peersLeft: number;
  keySwaps: number;
  junkSent: number;
  samples: SoakSample[];
  rssStart: number;
  rssEnd: number;
  rssAnonStart: number;
  rssAnonEnd: number;
  fdsStart: number;
  fdsEnd: number;
  ping: { sent: number; received: number };
  alive: boolean;
}

/** Peers that come and go; at most this many at once besides the real one. */
const CHURN = 40;

export async function soak(seconds: number, junkPerRound = 5000): Promise<SoakResult> {
  const world = await World.create('MP');
  const dir = mkdtempSync(join(tmpdir(), 'hx-soak-'));
  const { server, client } = world;
  let ping: ReturnType<typeof background> | undefined;
  try {
    const pool = await armAttacker(world, dir, 0);
    ping = background(client.ns, ['ping', '-n', '-q', '-i', '0.2', server.vpn]);
    const samples: SoakSample[] = [];
    const live: number[] = [];
    let nextId = 2;
    const tally = { joined: 0, left: 0, swaps: 0, junk: 0, rounds: 0 };
    let realKeyId = 0;
    const start = Date.now();
    // At most one sample a second: an hour's soak stays a readable file.
    const sample = async () => {
      const t = (Date.now() - start) / 1000;
      if (samples.length > 0 && t - samples[samples.length - 1]!.t < 1 && Date.now() - start < seconds * 1000) return;
      const { rss, rssAnon, fds } = usage(server.pid);
      const { peers } = await server.control.ok('iface-get');
      samples.push({ t, rss, rssAnon, fds, peers: peers as number });
    };
    await sample();
    while (Date.now() - start < seconds * 1000) {
      tally.rounds++;
      // Five peers join with a key; some swap keys; the oldest leave once there are CHURN.
      for (let n = 0; n < 5; n++) {
        const id = nextId++;
        if (nextId > 0xfff000) nextId = 2;
        await world.addPeer(server, id, `10.77.${1 + (id % 200)}.${1 + (id % 250)}`, vpnOf(id), 1024 + (id % 60000));
        await server.control.ok('key-new', keyconf(id, 'primary', keyPair('AES-256-GCM', id % 8)[0]));
        if (id % 3 === 0) {
          await server.control.ok('key-new', keyconf(id, 'secondary', keyPair('CHACHA20-POLY1305', (id + 1) % 8)[0]));
          await server.control.ok('key-swap', { keyconf: { 'peer-id': id } });
          await server.control.ok('key-del', { keyconf: { 'peer-id': id, slot: 'secondary' } });
          tally.swaps++;
        }
        live.push(id);
        tally.joined++;
      }
      while (live.length > CHURN) {
        await server.control.ok('peer-del', { peer: { id: live.shift()! } });
        tally.left++;
      }
      // The real pair swaps keys every tenth round (a renegotiation): new key in both
      // secondaries, then both swap. Key-id 1 is the attacker's, so the real ones skip it.
      if (tally.rounds % 10 === 0) {
        realKeyId = realKeyId === 0 ? 2 : realKeyId === 7 ? 0 : realKeyId + 1;
        const [s, c] = keyPair('AES-256-GCM', realKeyId);
        await server.control.ok('key-new', keyconf(1, 'secondary', s));
        await client.control.ok('key-new', keyconf(1, 'secondary', c));
        await server.control.ok('key-swap', { keyconf: { 'peer-id': 1 } });
        await client.control.ok('key-swap', { keyconf: { 'peer-id': 1 } });
        tally.swaps++;
      }
      const flood = await worker<{ sent: number }>(client.ns, 'flood.js', [pool, String(junkPerRound)]);
      tally.junk += flood.sent;
      await sample();
      await sleep(200);
    }
    ping.child.kill('SIGINT');
    const warm = samples[Math.min(samples.length - 1, Math.max(1, Math.floor(samples.length / 10)))]!;
    const end = samples[samples.length - 1]!;
    return {
      seconds,
      rounds: tally.rounds,
      peersJoined: tally.joined,
      peersLeft: tally.left,
      keySwaps: tally.swaps,
      junkSent: tally.junk,
      samples,
      rssStart: warm.rss,
      rssEnd: end.rss,
      rssAnonStart: warm.rssAnon,
      rssAnonEnd: end.rssAnon,
      fdsStart: warm.fds,
      fdsEnd: end.fds,
      ping: pingStats(await ping.output),
      alive: alive(server.pid),
    };
  } finally {
    ping?.child.kill('SIGINT');
    rmSync(dir, { recursive: true, force: true });
    await world.teardown();
  }
}

/** A VPN address in 5.5.8.0/21 .. for peer `id`, unique among the CHURN live ones. */
function vpnOf(id: number): string {
  const n = 2 + (id % 2000);
  return `5.5.${8 + (n >> 8)}.${n & 255}`;
}
