/**
 * Captures known-answer data for the control plane from real openvpn 2.6 runs (root; run with
 * `node dist/test/helpers/capture-control-vectors.js <out-dir> [run names]`): openvpn as
 * tls-client at --verb 7 against our tls-server, with keys by the exporter, by the PRF, and
 * with tls-crypt and tls-auth wrapping (packets recorded as on the wire). openvpn
 * prints its key sources and the key2 it derived ("Master Encrypt/Decrypt"); our end records the
 * control packets both ways, its session ids and the TLS key log. The fixture keeps what
 * openvpn printed, so the tests check our derivations against openvpn's, not against ourselves.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpenvpnHarness, OUR_VPN } from './openvpn-harness.js';

const out = process.argv[2] ?? 'test/fixtures/openvpn-control';

/** The lines of openvpn's log that carry key material, without their timestamps. */
function keyLines(log: string): string[] {
  return log
    .split('\n')
    .map((l) => l.replace(/^\S+ \S+ us=\d+ /, '').trim())
    .filter((l) =>
      /(pre_master|random1|random2|Master (En|De)crypt|NCP negotiation result|Initial packet from)/.test(l),
    );
}

const runs = [
  { name: 'p2p-exporter', exporter: true },
  { name: 'p2p-prf', exporter: false },
  { name: 'p2p-tls-crypt', exporter: true, wrap: 'tls-crypt' as const },
  { name: 'p2p-tls-auth', exporter: true, wrap: 'tls-auth' as const },
];
for (const run of runs.filter((r) => process.argv.length < 4 || process.argv.slice(3).includes(r.name))) {
  const { exporter } = run;
  const h = new OpenvpnHarness();
  try {
    const cipher = exporter ? 'AES-256-GCM' : 'CHACHA20-POLY1305';
    const established = JSON.parse(
      await h.start({
        ciphers: [cipher],
        theirCiphers: [cipher],
        exporter,
        verb: 7,
        ...(run.wrap ? { wrap: run.wrap } : {}),
      }),
    );
    h.inTheirs(['ping', '-c', '2', '-i', '0.2', '-W', '2', OUR_VPN]);
    const r = await h.results();
    const fixture = {
      format: 'openvpn-control-capture/1',
      source: 'openvpn 2.6.14 --tls-client --verb 7 (Debian) against our tls-server, P2P TLS mode over UDP',
      cipher,
      keyMethod: established.keyMethod,
      peerId: established.peerId,
      ourSessionId: r.sessionId,
      theirSessionId: r.remoteSessionId,
      ourKeys: r.keys,
      openvpnLog: keyLines(h.theirs!.output),
      keylog: r.keylog,
      ...(run.wrap === undefined
        ? {}
        : { wrap: run.wrap, staticKey: h.staticKey, openvpnKeyDirection: run.wrap === 'tls-auth' ? 1 : undefined }),
      packets: r.packets,
    };
    const file = join(out, `${run.name}.json`);
    writeFileSync(file, `${JSON.stringify(fixture, null, 2)}\n`);
    console.log(`wrote ${file}`);
  } finally {
    await h.stop();
  }
}
