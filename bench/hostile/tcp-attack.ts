/**
 * The TCP attack run: an MP server's listening peer (`listen`) under idle floods, trickled
 * length prefixes and open/close loops (tcp-attack-ns.ts), while a real client, a second
 * interface in the client's namespace, connects in the middle of it and pings through.
 */
import { ControlLine } from './control-line.js';
import { alive, keyconf, keyPair, pingIn, pingStats, runOk, sleep, usage, World, worker } from './world.js';

export interface TcpAttackResult {
  seconds: number;
  attacker: Record<string, number>;
  ping: { sent: number; received: number };
  /** Connections the real client opened until one got through (see tcpAttack). */
  realClientAttempts: number;
  realPeerRemotePort: number;
  realClientPort: number;
  rssBefore: number;
  rssAfter: number;
  rssAnonBefore: number;
  rssAnonAfter: number;
  fdsBefore: number;
  fdsAfter: number;
  alive: boolean;
}

const TCP_PORT = 1195;
const LISTEN_ID = 50;

export async function tcpAttack(seconds: number): Promise<TcpAttackResult> {
  const world = await World.create('MP');
  const { server, client } = world;
  try {
    const [sk, ck] = keyPair('AES-256-GCM', 0);
    const vpn = '5.5.7.50';
    await server.control.ok('peer-new', {
      peer: { id: LISTEN_ID, transport: 'tcp', 'local-port': TCP_PORT, 'vpn-ipv4': vpn },
    });
    await server.control.ok('key-new', keyconf(LISTEN_ID, 'primary', sk));
    const watcher = await ControlLine.open(server.socketPath);
    await watcher.ok('subscribe');
    const use0 = usage(server.pid);
    const attack = worker<Record<string, number>>(client.ns, 'tcp-attack-ns.js', [
      server.addr,
      String(TCP_PORT),
      String(seconds),
    ]);
    // Let the squatters get there first.
    await sleep(Math.min(2000, (seconds * 1000) / 4));
    const real = await World.side(client.ns, 'P2P', client.addr, vpn, 'tun1');
    world.extra.push(real);
    await runOk('ip', ['-n', client.ns, 'addr', 'add', `${vpn}/32`, 'dev', 'tun1']);
    await runOk('ip', ['-n', client.ns, 'link', 'set', 'tun1', 'up']);
    await runOk('ip', ['-n', client.ns, 'route', 'add', `${server.vpn}/32`, 'dev', 'tun1', 'src', vpn]);
    const ping = (count: number) => pingIn(client.ns, server.vpn, count, 0.2, vpn);
    // While its connection waits behind the squatter's, the real client can be pushed out of the
    // waiting connections by newer ones before it sends anything; a real OpenVPN client then
    // connects again, so this one does too, and the run counts how often it had to.
    let attempts = 0;
    for (;;) {
      attempts++;
      // Either step fails when the connection was already pushed out (the peer is then gone).
      const added = await real.control.request('peer-new', {
        peer: { id: LISTEN_ID, transport: 'tcp', 'remote-ipv4': server.addr, 'remote-port': TCP_PORT },
      });
      const keyed = added.ok === true && (await real.control.request('key-new', keyconf(LISTEN_ID, 'primary', ck))).ok;
      const first = keyed ? pingStats((await ping(2)).stdout) : { sent: 0, received: 0 };
      const still = await real.control.request('peer-get', { peer: { id: LISTEN_ID } });
      if (first.received > 0 && still.ok === true) break;
      if (still.ok === true) await real.control.request('peer-del', { peer: { id: LISTEN_ID } });
      if (attempts >= 20) throw new Error(`the real client never got through: ${JSON.stringify(watcher.events)}`);
    }
    const count = Math.max(5, Math.floor(seconds * 2));
    const p = await ping(count);
    const got = await server.control.request('peer-get', { peer: { id: LISTEN_ID } });
    if (got.ok !== true) throw new Error(`peer ${LISTEN_ID} gone: ${JSON.stringify(watcher.events)} ping: ${p.stdout}`);
    const peer = got.peer;
    const { peer: mine } = await real.control.ok('peer-get', { peer: { id: LISTEN_ID } });
    const attacker = await attack;
    // The attacker's connections are gone: what the server holds should be back to the start, plus the real one.
    await sleep(500);
    const use1 = usage(server.pid);
    return {
      seconds,
      attacker,
      ping: pingStats(p.stdout),
      realClientAttempts: attempts,
      realPeerRemotePort: peer['remote-port'] as number,
      realClientPort: mine['local-port'] as number,
      rssBefore: use0.rss,
      rssAfter: use1.rss,
      rssAnonBefore: use0.rssAnon,
      rssAnonAfter: use1.rssAnon,
      fdsBefore: use0.fds,
      fdsAfter: use1.fds,
      alive: alive(server.pid),
    };
  } finally {
    await world.teardown();
  }
}
