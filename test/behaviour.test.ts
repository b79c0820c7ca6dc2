/**
 * Behaviour of whole interfaces, end to end: two network namespaces bt0/bt1 joined by a veth
 * pair, a tun0 in each made with ovpn-cli (its daemons detached as in real use), and traffic
 * from ping. Each test builds a fresh pair and tears it down, checking that no daemon, ping or
 * listener is left behind (see helpers/behaviour-harness.ts).
 *
 * Waits are on events (a notification printed by listen_mcast, a process exiting) or bounded
 * polls of a condition; nothing sleeps a fixed time to synchronise.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { test } from 'node:test';
import {
  type Background,
  cli,
  cliJson,
  cliOk,
  drop,
  getPeer,
  ifaceGet,
  inNs,
  LINK_ADDR,
  linkExists,
  NS,
  NS_HELPER,
  PEER,
  PORT,
  parseNotification,
  pidAlive,
  pingStats,
  runOk,
  VPN_ADDR,
  waitFor,
  waitUntil,
  withTunnel,
} from './helpers/behaviour-harness.js';

/** Packets the kernel took from tun0's writer in a namespace (the TUN's RX count). */
function tunRxPackets(ns: 'bt0' | 'bt1'): number {
  const [link] = JSON.parse(execFileSync('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'tun0'], { encoding: 'utf8' }));
  return Number(link.stats64.rx.packets);
}

/** Linux 6.2 and later take UDP super-packets on a TUN (TUN_F_USO4/6). */
function usoKernel(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 2);
}

// Daemons started from here (through ovpn-cli) report their drops in their log this often.
process.env.OVPN_DROP_REPORT_MS = '200';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root to create network namespaces and TUN devices';

/** Notifications printed so far by a listen_mcast process. */
function notifications(listener: Background) {
  return listener.lines
    .filter((l) => l.stream === 'stdout')
    .map((l) => parseNotification(l.text))
    .filter((n) => n !== null);
}

/** A stack trace or fatal error in a daemon log. */
const TRACE = /^\s+at .+:\d+:\d+\)?$|fatal|Uncaught|Error:/m;

test('silence: keepalives keep both peers alive without reaching the TUN; a silent peer expires with EXPIRED', {
  skip,
}, async (ctx) => {
  await withTunnel({}, async (t) => {
    const listener = await t.listen('bt0');
    const before = { bt0: await getPeer('bt0'), bt1: await getPeer('bt1') };
    for (const ns of NS) await cliOk(ns, 'tun0', 'set_peer', String(PEER), '1', '3');
    const started = Date.now();

    // No traffic: only keepalives (interval 1 s) cross. Four of them take longer than the 3 s
    // timeout, so a peer that had not consumed them as proof of life would have expired.
    await waitUntil(
      'four keepalives received on each side',
      async () => {
        for (const ns of NS)
          if ((await getPeer(ns))['link-rx-packets'] < before[ns]['link-rx-packets'] + 4) return false;
        return true;
      },
      10_000,
      250,
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed > 3_000, `keepalive window ${elapsed} ms is longer than the 3 s timeout`);
    for (const ns of NS) {
      const now = await getPeer(ns); // fails if the peer expired
      assert.equal(now['keepalive-interval'], 1);
      assert.equal(now['keepalive-timeout'], 3);
      assert.ok(now['link-rx-packets'] >= before[ns]['link-rx-packets'] + 4, `${ns}: keepalives arrived on the link`);
      assert.ok(now['link-tx-packets'] >= before[ns]['link-tx-packets'] + 3, `${ns}: keepalives were sent`);
      assert.equal(
        now['vpn-rx-packets'],
        before[ns]['vpn-rx-packets'],
        `${ns}: keepalives are consumed, not written to the TUN`,
      );
      assert.equal(now['vpn-tx-packets'], before[ns]['vpn-tx-packets'], `${ns}: no traffic from the TUN`);
      assert.equal(
        drop(now.drops, 'auth') + drop(now.drops, 'malformed') + drop(now.drops, 'replay'),
        0,
        `${ns}: keepalives all authenticated`,
      );
    }
    assert.deepEqual(notifications(listener), [], 'no peer was deleted while keepalives flowed');

    // Silence bt1: its daemon stops, so bt0 hears nothing more and must expire the peer.
    const silent = await t.daemonPid('bt1');
    process.kill(silent, 'SIGSTOP');
    const stopped = Date.now();
    const line = await listener.waitLine(
      (text) => text.startsWith('received CMD_PEER_DEL_NTF'),
      'peer-del-ntf on bt0',
      6_500,
    );
    const expiredAfter = Date.now() - stopped;
    process.kill(silent, 'SIGCONT');
    const { time, ...attrs } = parseNotification(line)?.attrs ?? {};
    assert.match(time, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'notifications carry the time they were sent');
    assert.deepEqual(
      { ...parseNotification(line), attrs },
      {
        name: 'CMD_PEER_DEL_NTF',
        ifname: 'tun0',
        attrs: { peer: { id: PEER, 'del-reason': 'EXPIRED' } },
      },
    );
    assert.ok(expiredAfter <= 6_000, `expired ${expiredAfter} ms after bt1 went silent (timeout 3 s)`);
    ctx.diagnostic(`keepalive window ${elapsed} ms; peer expired ${expiredAfter} ms after bt1 went silent`);
    assert.ok(expiredAfter >= 1_500, `expired ${expiredAfter} ms after bt1 went silent: too early for a 3 s timeout`);

    const gone = await cli('bt0', 'tun0', 'get_peer', String(PEER));
    assert.notEqual(gone.code, 0, 'get_peer of an expired peer fails');
    assert.match(gone.stderr, /cannot find peer with id 1/);
  });
});

test('swap_keys under traffic loses no more than the packets in flight', { skip }, async (ctx) => {
  await withTunnel({}, async (t) => {
    const before = await getPeer('bt0');
    const ping = t.spawn('bt0', ['ping', '-q', '-i', '0.002', '-c', '2000', '-W', '2', '5.5.6.2']);
    await waitUntil(
      'ping traffic through the tunnel',
      async () => (await getPeer('bt0'))['vpn-rx-packets'] >= before['vpn-rx-packets'] + 100,
      5_000,
      50,
    );

    for (const [dir, ns] of NS.entries())
      await cliOk(ns, 'new_key', 'tun0', String(PEER), '2', '1', 'aes', String(dir), t.keyFile2);
    for (const ns of NS) await cliOk(ns, 'swap_keys', 'tun0', String(PEER));
    assert.ok(ping.running, 'the keys were swapped while ping was still running');
    const mid = await getPeer('bt0');

    const { code } = await ping.exited;
    const { sent, received } = pingStats(ping.stdout);
    assert.equal(sent, 2000);
    ctx.diagnostic(`ping across the swap: ${sent - received} of ${sent} lost`);
    assert.ok(
      sent - received <= sent / 100,
      `lost ${sent - received} of ${sent} packets (at most 1% allowed)\n${ping.stdout}`,
    );
    assert.ok(code === 0 || sent - received > 0, `ping exited ${code}`);

    for (const ns of NS) {
      assert.deepEqual(await cliJson(ns, 'get_key', 'tun0', String(PEER), '1'), {
        'peer-id': PEER,
        slot: 'primary',
        'key-id': 1,
        'cipher-alg': 'AES-256-GCM',
      });
      assert.deepEqual(await cliJson(ns, 'get_key', 'tun0', String(PEER), '2'), {
        'peer-id': PEER,
        slot: 'secondary',
        'key-id': 0,
        'cipher-alg': 'AES-256-GCM',
      });
      const after = await getPeer(ns);
      for (const name of ['noKey', 'auth', 'replay', 'malformed'])
        assert.equal(drop(after.drops, name), 0, `${ns}: no ${name} drops across the swap`);
    }
    const after = await getPeer('bt0');
    assert.ok(after['vpn-rx-packets'] > mid['vpn-rx-packets'] + 100, 'traffic kept flowing under the new key');
  });
});

test('del_peer and del_iface under flood traffic crash nothing', { skip }, async () => {
  await withTunnel({ ownDaemon: 'bt1' }, async (t) => {
    const pid0 = await t.daemonPid('bt0');
    const pid1 = await t.daemonPid('bt1');
    assert.equal(pid1, t.ownDaemon!.child.pid, 'iface-get reports the daemon pid');
    const before = { bt0: await getPeer('bt0'), bt1: await getPeer('bt1') };
    const floods = [
      t.spawn('bt0', ['ping', '-f', '-w', '30', '5.5.6.2']),
      t.spawn('bt1', ['ping', '-f', '-w', '30', '5.5.6.1']),
    ];
    await waitUntil(
      'flood traffic both ways',
      async () =>
        (await getPeer('bt0'))['vpn-rx-packets'] >= before.bt0['vpn-rx-packets'] + 500 &&
        (await getPeer('bt1'))['vpn-rx-packets'] >= before.bt1['vpn-rx-packets'] + 500,
      10_000,
    );

    await cliOk('bt0', 'tun0', 'del_peer', String(PEER));
    assert.deepEqual(await cliJson('bt0', 'tun0', 'get_peer'), [], 'no peers left on bt0');
    // bt0's own flood keeps writing to its TUN, and bt1 keeps flooding bt0's address: the
    // daemon must go on counting what it can no longer deliver.
    const drops0 = (await ifaceGet('bt0')).drops;
    await waitFor(
      'bt0 dropping traffic for the deleted peer',
      async () => {
        const d = (await ifaceGet('bt0')).drops;
        return { done: drop(d, 'noRoute') >= drop(drops0, 'noRoute') + 200, seen: { before: drops0, now: d } };
      },
      10_000,
    );
    assert.ok(pidAlive(pid0), 'bt0 daemon alive after del_peer under traffic');
    assert.equal((await ifaceGet('bt0')).pid, pid0, 'and still answering');

    const tx1 = (await getPeer('bt1'))['vpn-tx-packets'];
    await waitUntil('bt1 still sending', async () => (await getPeer('bt1'))['vpn-tx-packets'] > tx1 + 100, 5_000);
    const deleted = await cliOk('bt1', 'del_iface', 'tun0');
    assert.match(deleted, /^Deleting interface tun0 ifindex \d+$/m);
    const exit = await Promise.race([
      t.ownDaemon!.exited,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('bt1 daemon did not exit within 5 s of del_iface')), 5_000).unref(),
      ),
    ]);
    assert.deepEqual(exit, { code: 0, signal: null }, 'bt1 daemon exited cleanly');
    assert.ok(!pidAlive(pid1), 'bt1 daemon pid is gone');
    assert.equal(await linkExists('bt1'), false, 'tun0 is gone from bt1');
    const after = await cli('bt1', 'tun0', 'get_peer');
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /does not exist/);

    for (const flood of floods) await flood.stop('SIGINT');
    assert.ok(pidAlive(pid0), 'bt0 daemon survived the whole flood');
    for (const ns of NS) {
      const log = t.logSinceStart(ns);
      assert.doesNotMatch(log, TRACE, `${ns} daemon log shows an error:\n${log}`);
    }
    assert.match(t.logSinceStart('bt0'), /msg="peer deleted" ifname=tun0 peer=1 reason=USERSPACE/);
    assert.match(t.logSinceStart('bt1'), /msg="interface closed" ifname=tun0 reason="deleted by del_iface"/);
  });
});

test('malformed and forged UDP datagrams are dropped and counted, control packets go up, the tunnel keeps working', {
  skip,
}, async () => {
  await withTunnel({}, async (t) => {
    const listener = await t.listen('bt0');
    const ifaceBefore = (await ifaceGet('bt0')).drops;
    const peerBefore = await getPeer('bt0');

    const sent = await inNs('bt1', [process.execPath, NS_HELPER, 'junk', LINK_ADDR.bt0, String(PORT), String(PEER)]);
    assert.equal(sent.code, 0, sent.stderr);
    const junk = JSON.parse(sent.stdout).sent as { name: string; hex: string }[];

    const controls = junk.filter((j) => j.name === 'CONTROL_HARD_RESET_CLIENT_V2' || j.name === 'ACK_V1');
    await listener.waitLine(
      () => notifications(listener).filter((n) => n.name === 'CMD_PACKET_NTF').length >= controls.length,
      'two packet-ntf notifications',
    );
    const packets = notifications(listener).filter((n) => n.name === 'CMD_PACKET_NTF');
    assert.deepEqual(
      packets.map((n) => Buffer.from(n.attrs.data, 'base64').toString('hex')),
      controls.map((c) => c.hex),
      'control packets handed up untouched, in order',
    );
    for (const n of packets) {
      assert.equal(n.attrs['peer-id'], PEER, 'attributed to the peer at that address');
      assert.equal(n.attrs['local-port'], PORT);
      assert.equal(n.attrs.remote.address, LINK_ADDR.bt1);
    }

    // Expected: per interface, what matches no peer; per peer, what failed to open.
    const wantIface = { malformed: 3, unknownPeer: 1, dataV1: 1, auth: 0, noKey: 0, replay: 0, io: 0 };
    const wantPeer = { auth: 1, noKey: 1, replay: 1, malformed: 1, io: 0, unknownPeer: 0, dataV1: 0 };
    const delta = (now: Record<string, number>, then: Record<string, number>, want: Record<string, number>) =>
      Object.fromEntries(Object.keys(want).map((k) => [k, drop(now, k) - drop(then, k)]));
    let seen: unknown;
    try {
      await waitUntil(
        'drop counters to reach the expected values',
        async () => {
          const iface = delta((await ifaceGet('bt0')).drops, ifaceBefore, wantIface);
          const peer = delta((await getPeer('bt0')).drops, peerBefore.drops, wantPeer);
          seen = { iface, peer };
          return JSON.stringify(seen) === JSON.stringify({ iface: wantIface, peer: wantPeer });
        },
        3_000,
      );
    } catch {
      assert.deepEqual(seen, { iface: wantIface, peer: wantPeer }, 'drop counter increments');
    }
    // And the log says so: the daemons report what they dropped (every 200 ms in these tests).
    await waitUntil(
      'a drop report in the bt0 log',
      () => /msg="packets dropped" ifname=tun0 period-s=[\d.]+ .*malformed=\d/.test(t.logSinceStart('bt0')),
      3_000,
    );
    const peerAfter = await getPeer('bt0');
    assert.equal(
      peerAfter['link-rx-packets'] - peerBefore['link-rx-packets'],
      4,
      'the four DATA_V2 for peer 1 were counted as received on the link',
    );
    assert.equal(peerAfter['vpn-rx-packets'], peerBefore['vpn-rx-packets'], 'nothing forged reached the TUN');
    assert.equal(
      notifications(listener).filter((n) => n.name !== 'CMD_PACKET_NTF').length,
      0,
      'no peer deleted, no key swap asked',
    );

    const ping = await t.ping('bt0', '-c', '20', '-i', '0.05', '-W', '2');
    assert.deepEqual(pingStats(ping.stdout), { sent: 20, received: 20 }, ping.stdout);
    await listener.stop('SIGINT');
  });
});

test('SIGKILL of a daemon leaves nothing that blocks re-creating the interface', { skip }, async () => {
  await withTunnel({}, async (t) => {
    const killed = await t.daemonPid('bt0');
    process.kill(killed, 'SIGKILL');
    await waitUntil('the killed daemon to be gone', () => !pidAlive(killed), 3_000, 20);
    await waitUntil('tun0 to vanish with its owner', async () => !(await linkExists('bt0')), 3_000);

    await t.addPeer('bt0'); // seed syntax: creates tun0 again
    const fresh = await t.daemonPid('bt0');
    assert.notEqual(fresh, killed);
    await cliOk('bt0', 'tun0', 'new_key', String(PEER), 'aes', '0', t.keyFile);
    await inNs('bt0', ['ip', 'addr', 'add', '5.5.6.1/24', 'dev', 'tun0']);
    // The restarted side counts packet-ids from 1 again, so bt1 is rekeyed as a real peer
    // renegotiating after a restart would be (otherwise its replay window drops the first few).
    await cliOk('bt1', 'tun0', 'new_key', String(PEER), 'aes', '1', t.keyFile);

    const ping = await t.ping('bt0', '-c', '5', '-i', '0.1', '-W', '2');
    assert.deepEqual(pingStats(ping.stdout), { sent: 5, received: 5 }, ping.stdout);
    assert.ok(pidAlive(fresh));
  });
});

test('`ip link del` and SIGTERM each stop the daemon cleanly: peers TEARDOWN, socket removed, no trace', {
  skip,
}, async () => {
  await withTunnel({}, async (t) => {
    for (const [ns, stop] of [
      ['bt0', async () => void (await inNs('bt0', ['ip', 'link', 'del', 'tun0']))],
      ['bt1', async (pid: number) => process.kill(pid, 'SIGTERM')],
    ] as const) {
      const listener = await t.listen(ns);
      const pid = await t.daemonPid(ns);
      await stop(pid);
      await waitUntil(`the ${ns} daemon to exit`, () => !pidAlive(pid), 5_000, 20);
      // The daemon flushes its goodbye before exiting, but the listener may not have printed it yet.
      await listener.waitLine(
        () => notifications(listener).some((n) => n.name === 'CMD_IFACE_DEL_NTF'),
        'the iface-del notification',
      );
      const names = notifications(listener).map((n) => [n.name, n.attrs?.peer?.['del-reason'] ?? null]);
      assert.deepEqual(names, [
        ['CMD_PEER_DEL_NTF', 'TEARDOWN'],
        ['CMD_IFACE_DEL_NTF', null],
      ]);
      assert.equal(await linkExists(ns), false);
      const socket = t.logPath(ns).replace(/tun0\.log$/, 'tun0.sock');
      assert.equal(existsSync(socket), false, `${socket} must be removed`);
      assert.doesNotMatch(t.logSinceStart(ns), TRACE);
      const again = await cli(ns, 'tun0', 'get_peer');
      assert.notEqual(again.code, 0, 'the interface is gone for the CLI too');
    }
  });
});

test('`ip link set tun0 down` under traffic costs packets, not the daemon: io drops counted, one warning, back when up', {
  skip,
}, async () => {
  await withTunnel({}, async (t) => {
    const pid0 = await t.daemonPid('bt0');
    const before = drop((await ifaceGet('bt0')).drops, 'io');
    await runOk('ip', ['-n', 'bt0', 'link', 'set', 'tun0', 'down']);
    // bt1 keeps sending to bt0's VPN address; bt0 authenticates each and cannot write it.
    const ping = await inNs('bt1', ['ping', '-c', '20', '-i', '0.05', '-W', '1', VPN_ADDR.bt0], 30_000);
    assert.notEqual(ping.code, 0, 'no replies while bt0 is down');
    const io = drop((await ifaceGet('bt0')).drops, 'io');
    assert.ok(io >= before + 10, `writes to a TUN that is down are counted (${before} -> ${io})`);
    assert.ok(pidAlive(pid0), 'the bt0 daemon lives on');
    const log = t.logSinceStart('bt0');
    assert.equal(log.match(/writing to tun0 failed/g)?.length, 1, `one warning in the log:\n${log}`);
    await runOk('ip', ['-n', 'bt0', 'link', 'set', 'tun0', 'up']);
    await runOk('ip', ['-n', 'bt0', 'addr', 'replace', `${VPN_ADDR.bt0}/24`, 'dev', 'tun0']);
    const back = await t.ping('bt1', '-c', '3', '-i', '0.2', '-W', '1');
    assert.equal(back.code, 0, `ping works again once up:\n${back.stdout}`);
  });
});

test('bursts of UDP datagrams cross byte for byte, merged into UDP super-packets on the TUN where the kernel takes them', {
  skip,
}, async () => {
  await withTunnel({}, async (t) => {
    const rxBefore = tunRxPackets('bt1');
    const sink = t.spawn('bt1', [process.execPath, NS_HELPER, 'udp-sink', VPN_ADDR.bt1, '7777']);
    await sink.waitLine((text) => text === 'listening', 'the UDP sink to bind');
    const sent = await inNs('bt0', [process.execPath, NS_HELPER, 'udp-burst', VPN_ADDR.bt1, '7777', '100'], 30_000);
    assert.equal(sent.code, 0, sent.stderr);
    const line = await sink.waitLine((text) => text.startsWith('{'), 'the UDP sink to report', 15_000);
    const { received, bad } = JSON.parse(line) as { received: number; bad: number };
    assert.equal(bad, 0, 'every datagram that came is the one sent, the short last of each burst too');
    assert.ok(received >= 3200 * 0.95, `${received} of 3200 datagrams came`);
    const writes = tunRxPackets('bt1') - rxBefore;
    // The TUN counts a super-packet once: merged, far fewer writes than datagrams.
    if (usoKernel()) assert.ok(writes < received / 2, `${writes} TUN writes for ${received} datagrams`);
    else assert.ok(writes >= received, `${writes} TUN writes for ${received} datagrams (one each)`);
  });
});

test('`ip netns del` of a daemon’s namespace stops the daemon: peers TEARDOWN, nothing left running', {
  skip,
}, async () => {
  await withTunnel({}, async (t) => {
    const pid = await t.daemonPid('bt0');
    await runOk('ip', ['netns', 'del', 'bt0']);
    await waitUntil('the bt0 daemon to exit', () => !pidAlive(pid), 5_000, 20);
    assert.match(t.logSinceStart('bt0'), /msg="peer deleted" ifname=tun0 peer=1 reason=TEARDOWN/);
    assert.match(
      t.logSinceStart('bt0'),
      /msg="interface closed" ifname=tun0 reason="its network namespace was deleted \(ip netns del\)"/,
    );
  });
});
