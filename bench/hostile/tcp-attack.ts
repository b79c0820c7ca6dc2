/**
 * The TCP attack run: an MP server's listening peer (`listen`) under idle floods, trickled
 * length prefixes and open/close loops (tcp-attack-ns.ts), while a real client, a second
 * interface in the client's namespace, connects in the middle of it and pings through.
 */
import { ControlLine } from './control-line.js';
import { alive, keyconf, keyPair, pingStats, run, runOk, sleep, usage, World, worker } from './world.js';

export interface TcpAttackResult {
  seconds: number;
  attacker: Record<string, number>;
  ping: { sent: number; received: number };
  realPeerRemotePort: number;
  realClientPort: number;
  rssBefore: number;
  rssAfter: number;
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
    await real.control.ok('peer-new', {
      peer: { id: LISTEN_ID, transport: 'tcp', 'remote-ipv4': server.addr, 'remote-port': TCP_PORT },
    });
    await real.control.ok('key-new', keyconf(LISTEN_ID, 'primary', ck));
    await runOk('ip', ['-n', client.ns, 'addr', 'add', `${vpn}/32`, 'dev', 'tun1']);
    await runOk('ip', ['-n', client.ns, 'link', 'set', 'tun1', 'up']);
    await runOk('ip', ['-n', client.ns, 'route', 'add', `${server.vpn}/32`, 'dev', 'tun1', 'src', vpn]);
    const count = Math.max(5, Math.floor(seconds * 2));
    const p = await run(
      'ip',
      ['netns', 'exec', client.ns, 'ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-I', vpn, server.vpn],
      60_000,
    );
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
      realPeerRemotePort: peer['remote-port'] as number,
      realClientPort: mine['local-port'] as number,
      rssBefore: use0.rss,
      rssAfter: use1.rss,
      fdsBefore: use0.fds,
      fdsAfter: use1.fds,
      alive: alive(server.pid),
    };
  } finally {
    await world.teardown();
  }
}
