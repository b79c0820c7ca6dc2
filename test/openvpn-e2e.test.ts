/**
 * Our control plane against Debian's real openvpn 2.6, in throw-away network namespaces (root):
 * openvpn as tls-client in point-to-point TLS mode connects to our tls-server; the session must
 * negotiate what 2.6 negotiates (P2P NCP: cipher, exporter keys, exported peer-id), and ping
 * and iperf3 must cross our data channel (its counters rise with the traffic).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { OpenvpnHarness, OUR_VPN, PUSHED_PEER_ID, THEIR_VPN } from './helpers/openvpn-harness.js';
import { MultiClientHarness } from './helpers/openvpn-multi.js';
import { missing } from './helpers/tools.js';

const skip = missing(['openvpn', 'iperf3', 'openssl']);
const harnesses: { stop(): Promise<void> }[] = [];
after(async () => {
  for (const h of harnesses) await h.stop();
});

/** A harness for one test, stopped when the test ends (and again by `after`, should a test hang). */
async function withHarness(body: (h: OpenvpnHarness) => Promise<void>): Promise<void> {
  const h = new OpenvpnHarness();
  harnesses.push(h);
  try {
    await body(h);
  } finally {
    await h.stop();
  }
}

const CASES: { cipher: string; exporter: boolean; wrap?: 'tls-crypt' | 'tls-auth' }[] = [
  { cipher: 'AES-256-GCM', exporter: true },
  { cipher: 'CHACHA20-POLY1305', exporter: false },
  { cipher: 'AES-256-GCM', exporter: true, wrap: 'tls-crypt' },
  { cipher: 'CHACHA20-POLY1305', exporter: true, wrap: 'tls-auth' },
];
for (const { cipher, exporter, wrap } of CASES) {
  const method = exporter ? 'exporter' : 'prf';
  const title = `openvpn e2e: real openvpn tls-client to our P2P tls-server, ${cipher}, keys by ${method}, ${wrap ?? 'no wrapping'}: ping and iperf3 cross`;
  test(title, { skip, timeout: 90_000 }, async () => {
    await withHarness(async (h) => {
      // Our preference decides (we are the tls-server), so openvpn lists the cipher second.
      const est = JSON.parse(
        await h.start({
          ciphers: [cipher],
          theirCiphers: ['AES-128-GCM', cipher],
          exporter,
          ...(wrap ? { wrap } : {}),
        }),
      );
      assert.equal(est.cipher, cipher);
      assert.equal(est.keyMethod, method);
      assert.equal(est.commonName, 'client1');
      // DATA_V2, TLS_KEY_EXPORT, NCP_P2P, DNS_OPTION, CC_EXIT_NOTIFY, DYN_TLS_CRYPT: what a P2P 2.6.14 announces.
      assert.equal(est.ivProto, '746');
      const theirLog = h.theirs!.output;
      assert.match(
        theirLog,
        new RegExp(
          `P2P mode NCP negotiation result: TLS_export=${exporter ? 1 : 0}, DATA_v2=1, peer-id ${est.peerId}, cipher=${cipher}`,
        ),
      );

      const ping = h.inTheirs(['ping', '-c', '5', '-i', '0.2', '-W', '2', OUR_VPN]);
      assert.match(ping, /5 packets transmitted, 5 received/);

      const received = await h.iperf(h.ns[0], h.ns[1], OUR_VPN);
      assert.ok(received > 1_000_000, `iperf3 moved ${received} bytes`);

      const r = await h.results();
      assert.equal(r.peer.id, est.peerId);
      // Every ping and every iperf3 byte went through our data channel in the receive direction.
      assert.ok(r.peer.vpnRxPackets >= 5, JSON.stringify(r.peer));
      assert.ok(r.peer.vpnRxBytes >= received, `vpn rx ${r.peer.vpnRxBytes} < iperf3 ${received}`);
      assert.ok(r.peer.vpnTxPackets >= 5, JSON.stringify(r.peer));
      assert.equal(r.peer.drops.auth, 0);
      assert.equal(r.session.malformed, 0);
      assert.equal(r.session.unauthenticated, 0);
      assert.equal(r.session.foreign, 0);
    });
  });
}

for (const wrap of [undefined, 'tls-crypt', 'tls-auth'] as const) {
  test(`openvpn e2e: our P2P tls-client to a real openvpn tls-server, ${wrap ?? 'no wrapping'}: ping and iperf3 cross`, {
    skip,
    timeout: 90_000,
  }, async () => {
    await withHarness(async (h) => {
      // openvpn is the tls-server now: its preference (CHACHA20-POLY1305 first) decides.
      const est = JSON.parse(
        await h.start({
          ourRole: 'client',
          ciphers: ['AES-256-GCM', 'CHACHA20-POLY1305'],
          theirCiphers: ['CHACHA20-POLY1305', 'AES-256-GCM'],
          exporter: true,
          ...(wrap ? { wrap } : {}),
        }),
      );
      assert.equal(est.cipher, 'CHACHA20-POLY1305');
      assert.equal(est.keyMethod, 'exporter');
      assert.equal(est.commonName, 'server');
      assert.match(
        h.theirs!.output,
        new RegExp(
          `P2P mode NCP negotiation result: TLS_export=1, DATA_v2=1, peer-id ${est.peerId}, cipher=CHACHA20-POLY1305`,
        ),
      );
      assert.match(
        h.inTheirs(['ping', '-c', '5', '-i', '0.2', '-W', '2', OUR_VPN]),
        /5 packets transmitted, 5 received/,
      );
      const received = await h.iperf(h.ns[0], h.ns[1], OUR_VPN);
      const r = await h.results();
      assert.ok(
        r.peer.vpnRxBytes >= received && received > 1_000_000,
        `vpn rx ${r.peer.vpnRxBytes}, iperf3 ${received}`,
      );
      assert.ok(r.peer.vpnTxPackets >= 5);
      assert.equal(r.peer.drops.auth, 0);
      assert.equal(r.session.unauthenticated, 0);
    });
  });
}

test('openvpn e2e: a real openvpn --client (pull) gets address, peer-id and cipher from our PUSH_REPLY; ping and iperf3 cross', {
  skip,
  timeout: 90_000,
}, async () => {
  await withHarness(async (h) => {
    const est = JSON.parse(
      await h.start({
        theirMode: 'pull',
        ciphers: ['CHACHA20-POLY1305', 'AES-256-GCM'],
        theirCiphers: ['AES-256-GCM', 'CHACHA20-POLY1305'],
        exporter: true,
      }),
    );
    assert.equal(est.peerId, PUSHED_PEER_ID);
    assert.equal(est.cipher, 'CHACHA20-POLY1305', 'the server picks from its own list');
    assert.equal(est.keyMethod, 'exporter');
    // REQUEST_PUSH among the pull client's IV_PROTO bits.
    assert.ok(Number(est.ivProto) & 4, est.ivProto);
    const pushed = await h.ours!.waitLine(/^PUSHED /, 5_000);
    assert.equal(
      pushed,
      `PUSHED PUSH_REPLY,topology subnet,route-gateway ${OUR_VPN},ping 10,ping-restart 60,ifconfig ${THEIR_VPN} 255.255.255.0,peer-id ${PUSHED_PEER_ID},cipher CHACHA20-POLY1305,protocol-flags cc-exit tls-ekm`,
    );
    // openvpn prints these just after "Initialization Sequence Completed".
    await h.theirs!.waitLine(/Data Channel: cipher 'CHACHA20-POLY1305', peer-id: 7$/, 5_000);
    await h.theirs!.waitLine(/Protocol options: protocol-flags cc-exit tls-ekm$/, 5_000);
    assert.match(h.inTheirs(['ip', '-4', 'addr', 'show', 'tun0']), new RegExp(`inet ${THEIR_VPN}/24`));
    assert.match(h.inTheirs(['ping', '-c', '5', '-i', '0.2', '-W', '2', OUR_VPN]), /5 packets transmitted, 5 received/);
    const received = await h.iperf(h.ns[0], h.ns[1], OUR_VPN);
    const r = await h.results();
    assert.equal(r.peer.id, PUSHED_PEER_ID);
    assert.ok(r.peer.vpnRxBytes >= received && received > 1_000_000, `vpn rx ${r.peer.vpnRxBytes}, iperf3 ${received}`);
    assert.equal(r.peer.keepaliveInterval, 10);
  });
});

test('openvpn e2e: our pull client gets address, peer-id and cipher from a real openvpn --server; ping and iperf3 cross', {
  skip,
  timeout: 90_000,
}, async () => {
  await withHarness(async (h) => {
    const est = JSON.parse(
      await h.start({
        ourRole: 'client',
        theirMode: 'server',
        ciphers: ['AES-256-GCM', 'CHACHA20-POLY1305'],
        theirCiphers: ['CHACHA20-POLY1305', 'AES-256-GCM'],
        exporter: true,
      }),
    );
    // openvpn's server: the first of its list that we announce, exporter keys, its own peer-id.
    assert.equal(est.cipher, 'CHACHA20-POLY1305');
    assert.equal(est.keyMethod, 'exporter');
    assert.equal(est.commonName, 'server');
    assert.equal(est.address, '10.99.0.2');
    assert.ok(est.pushed.includes('ifconfig 10.99.0.2 255.255.255.0'), est.pushed.join(','));
    assert.ok(est.pushed.includes(`peer-id ${est.peerId}`));
    assert.ok(est.pushed.includes('ping 10') && est.pushed.includes('ping-restart 60'));
    // The server sees our peer-info: a pull client's IV_PROTO (DATA_V2, REQUEST_PUSH, TLS_KEY_EXPORT,
    // CC_EXIT_NOTIFY), so it offers the control-channel exit notification.
    assert.match(h.theirs!.output, /peer info: IV_PROTO=142\b/);
    assert.match(h.theirs!.output, /PUSH_REPLY,.*protocol-flags cc-exit tls-ekm/);
    assert.match(
      h.inTheirs(['ping', '-c', '5', '-i', '0.2', '-W', '2', '10.99.0.2']),
      /5 packets transmitted, 5 received/,
    );
    const received = await h.iperf(h.ns[0], h.ns[1], '10.99.0.2');
    const r = await h.results();
    assert.equal(r.peer.id, est.peerId);
    assert.ok(r.peer.vpnRxBytes >= received && received > 1_000_000, `vpn rx ${r.peer.vpnRxBytes}, iperf3 ${received}`);
    assert.equal(r.peer.keepaliveInterval, 10);
    assert.equal(r.peer.keepaliveTimeout, 60);
  });
});

test('openvpn e2e: a real openvpn renegotiating every few seconds (reneg-sec) during a ping flood loses no packet', {
  skip,
  timeout: 90_000,
}, async () => {
  await withHarness(async (h) => {
    await h.start({
      ciphers: ['AES-256-GCM'],
      theirCiphers: ['AES-256-GCM'],
      exporter: true,
      wrap: 'tls-crypt',
      theirExtra: ['--reneg-sec', '3'],
    });
    const flood = h.spawnInTheirs('ping flood', ['ping', '-q', '-i', '0.005', '-c', '2000', '-W', '2', OUR_VPN]);
    // openvpn softens reneg-sec on the client side, so allow for its spread.
    await h.ours!.waitLine(/^ACTIVE 1$/, 20_000);
    await h.ours!.waitLine(/^ACTIVE 2$/, 20_000);
    await flood.exited;
    assert.match(flood.output, /2000 packets transmitted, 2000 received, 0% packet loss/);
    const r = await h.results();
    assert.deepEqual(r.keyIds.slice(0, 3), [0, 1, 2]);
    assert.ok(r.peer.vpnRxPackets >= 2000);
    assert.equal(r.peer.drops.noKey, 0);
    assert.equal(r.peer.drops.auth, 0);
    assert.equal(r.session.foreign, 0);
    assert.match(h.theirs!.output, /TLS: soft reset/);
  });
});

for (const ourRole of ['server', 'client'] as const) {
  const title =
    ourRole === 'server'
      ? 'a real openvpn tcp-client to our tcp tls-server'
      : 'our tcp tls-client to a real openvpn tcp-server';
  test(`openvpn e2e: over TCP, ${title}, tls-crypt: ping and iperf3 cross`, { skip, timeout: 90_000 }, async () => {
    await withHarness(async (h) => {
      const est = JSON.parse(
        await h.start({
          ourRole,
          proto: 'tcp',
          ciphers: ['AES-256-GCM'],
          theirCiphers: ['AES-256-GCM'],
          exporter: true,
          wrap: 'tls-crypt',
        }),
      );
      assert.equal(est.cipher, 'AES-256-GCM');
      assert.match(
        h.theirs!.output,
        ourRole === 'server'
          ? /TCP connection established with \[AF_INET\]10\.98\.0\.1:1194/
          : /TCP connection established with \[AF_INET\]10\.98\.0\.1:\d+/,
      );
      assert.match(
        h.inTheirs(['ping', '-c', '5', '-i', '0.2', '-W', '2', OUR_VPN]),
        /5 packets transmitted, 5 received/,
      );
      const received = await h.iperf(h.ns[0], h.ns[1], OUR_VPN);
      const r = await h.results();
      assert.equal(r.peer.transport, 'tcp');
      assert.ok(
        r.peer.vpnRxBytes >= received && received > 1_000_000,
        `vpn rx ${r.peer.vpnRxBytes}, iperf3 ${received}`,
      );
      assert.equal(r.session.unauthenticated, 0);
    });
  });
}

test('openvpn e2e: three real openvpn clients on our multi-client server get their own addresses, reach each other through it, and one leaving with explicit-exit-notify frees its place', {
  skip,
  timeout: 120_000,
}, async () => {
  const h = new MultiClientHarness(3);
  harnesses.push(h);
  try {
    await h.start(['AES-256-GCM', 'CHACHA20-POLY1305']);
    const connected = h
      .server!.output.split('\n')
      .filter((l) => l.startsWith('CONNECTED '))
      .map((l) => JSON.parse(l.slice('CONNECTED '.length)));
    assert.equal(connected.length, 3);
    assert.deepEqual(connected.map((c) => c.peerId).sort(), [1, 2, 3]);
    // Each client runs with the address we pushed to it.
    const addresses: string[] = [];
    for (let i = 0; i < 3; i++) {
      const shown = h.inClient(i, ['ip', '-4', '-o', 'addr', 'show', 'tun0']);
      const address = /inet (10\.99\.0\.\d+)\/24/.exec(shown)?.[1];
      assert.ok(address, shown);
      assert.ok(connected.some((c) => c.address === address && c.cipher === 'AES-256-GCM'));
      addresses.push(address);
    }
    assert.equal(new Set(addresses).size, 3);
    // Every client reaches the server and both other clients (client-to-client through our tun0).
    for (let i = 0; i < 3; i++) {
      for (const target of ['10.99.0.1', ...addresses.filter((_, j) => j !== i)]) {
        const ping = h.inClient(i, ['ping', '-c', '3', '-i', '0.2', '-W', '2', target]);
        assert.match(ping, /3 packets transmitted, 3 received/, `client ${i} -> ${target}`);
      }
    }
    const received = await h.iperf(h.serverNs, h.clientNs[0]!, '10.99.0.1');
    // The third client leaves with explicit-exit-notify: it says EXIT on the control channel
    // (cc-exit was pushed), and its peer, peer-id and address go at once.
    const leaving = connected.find((c) => c.address === addresses[2]);
    await h.clients[2]!.stop();
    const left = JSON.parse((await h.server!.waitLine(/^DISCONNECTED /, 10_000)).slice('DISCONNECTED '.length));
    assert.equal(left.peerId, leaving.peerId);
    assert.equal(left.reason, 'exit notification');
    const r = await h.results();
    assert.deepEqual(r.clients.map((c: { address: string }) => c.address).sort(), addresses.slice(0, 2).sort());
    assert.equal(r.peers.length, 2, 'the two clients, and no other peer holds the port');
    const byAddress = new Map<string, any>(r.peers.map((p: any) => [p.vpnIpv4, p]));
    // Three pings in, three to each other client out (and their replies), plus iperf3 from client 0.
    for (const [i, address] of addresses.slice(0, 2).entries()) {
      const peer = byAddress.get(address);
      assert.ok(peer.vpnRxPackets >= 9 && peer.vpnTxPackets >= 9, JSON.stringify(peer));
      if (i === 0) assert.ok(peer.vpnRxBytes >= received && received > 1_000_000, `${peer.vpnRxBytes} vs ${received}`);
      assert.equal(peer.drops.auth, 0);
    }
  } finally {
    await h.stop();
  }
});

test('openvpn e2e: a real openvpn client with an expired certificate is refused with a clear error', {
  skip,
  timeout: 60_000,
}, async () => {
  await withHarness(async (h) => {
    await h.setup({ ciphers: ['AES-256-GCM'], theirCiphers: ['AES-256-GCM'], exporter: true, theirCertExpired: true });
    const error = await h.ours!.waitLine(/^(ERROR|ESTABLISHED) /, 20_000);
    assert.match(
      error,
      /^ERROR peer certificate refused: certificate CN=expired-client is outside its validity dates$/,
    );
    const r = await h.results();
    assert.equal(r.peer, null);
    assert.doesNotMatch(h.theirs!.output, /Initialization Sequence Completed/);
  });
});

test('openvpn e2e: no common cipher with a real openvpn is a clear error on both sides', {
  skip,
  timeout: 60_000,
}, async () => {
  await withHarness(async (h) => {
    await h.setup({ ciphers: ['AES-256-GCM'], theirCiphers: ['CHACHA20-POLY1305'], exporter: true });
    const ours = await h.ours!.waitLine(/^(ERROR|ESTABLISHED) /, 20_000);
    assert.equal(ours, "ERROR no common data cipher: ours AES-256-GCM, the peer's CHACHA20-POLY1305");
    // Our key method message still went out, so openvpn reaches the same conclusion.
    await h.theirs!.waitLine(
      /P2P mode NCP negotiation result: .*cipher=\(not negotiated, fallback-cipher: none\)/,
      20_000,
    );
    const r = await h.results();
    assert.equal(r.peer, null);
  });
});

test('openvpn e2e: a client with the wrong tls-crypt key gets no answer at all', {
  skip,
  timeout: 60_000,
}, async () => {
  await withHarness(async (h) => {
    await h.setup({
      ciphers: ['AES-256-GCM'],
      theirCiphers: ['AES-256-GCM'],
      exporter: true,
      wrap: 'tls-crypt',
      theirKeyDiffers: true,
    });
    // openvpn sends its reset, then again after its retransmission timeout.
    await h.ours!.waitLine(/^DROPPED 2$/, 20_000);
    const r = await h.results();
    assert.equal(r.peer, null);
    assert.equal(r.reliable.sent, 0, 'not a single packet went back');
    assert.equal(r.packets.filter((p: { direction: string }) => p.direction === 'out').length, 0);
    assert.ok(r.session.unauthenticated >= 2);
    assert.doesNotMatch(h.theirs!.output, /Initialization Sequence Completed/);
  });
});
