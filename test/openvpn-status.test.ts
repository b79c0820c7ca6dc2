/**
 * status.ts against OpenVPN 2.6.14's own status files (test/fixtures/openvpn-status/, made by
 * capture.sh there with a real client connected): the same values give the same bytes, for
 * status-version 1, 2 and 3. No root.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatStatus, type StatusSnapshot, statusRealAddress, statusTime } from '../src/openvpn/status.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'openvpn-status');
const fixture = (version: 1 | 2 | 3) => readFileSync(join(FIXTURES, `version-${version}.txt`), 'utf8');
const TITLE =
  'OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]';

/** The values of one capture (captured in UTC): snapshot time, connect time, port and byte counts. */
function snapshot(time: number, connected: number, port: number, rx: number, tx: number): StatusSnapshot {
  return {
    title: TITLE,
    time,
    clients: [
      {
        commonName: 'client-1',
        realAddress: '10.97.0.2',
        realPort: port,
        virtualAddress: '10.8.0.2',
        bytesReceived: rx,
        bytesSent: tx,
        connectedSince: connected,
        clientId: 0,
        peerId: 0,
        cipher: 'AES-256-GCM',
      },
    ],
    routes: [
      {
        virtualAddress: '10.8.0.2',
        commonName: 'client-1',
        realAddress: '10.97.0.2',
        realPort: port,
        lastRef: connected,
      },
    ],
    maxBcastQueue: 0,
    dcoEnabled: false,
  };
}

const at = (hms: string) => Date.parse(`2026-11-28T${hms}Z`) / 1000;

test('status: version 1 is byte for byte what openvpn 2.6.14 wrote', () => {
  const s = snapshot(at('09:57:34'), at('09:57:32'), 43444, 2281, 2299);
  assert.equal(formatStatus(s, 1, { utc: true }), fixture(1));
});

test('status: version 2 (commas) is byte for byte what openvpn 2.6.14 wrote', () => {
  const s = snapshot(1795859859, 1795859856, 53023, 2282, 2301);
  assert.equal(formatStatus(s, 2, { utc: true }), fixture(2));
});

test('status: version 3 (tabs) is byte for byte what openvpn 2.6.14 wrote', () => {
  const s = snapshot(1795859863, 1795859860, 41567, 2281, 2300);
  assert.equal(formatStatus(s, 3, { utc: true }), fixture(3));
});

test('status: no clients, an unknown common name, IPv6 and IPv4-mapped real addresses', () => {
  const empty: StatusSnapshot = { title: 'x', time: 0, clients: [], routes: [], maxBcastQueue: 0, dcoEnabled: true };
  assert.equal(
    formatStatus(empty, 1, { utc: true }),
    'OpenVPN CLIENT LIST\nUpdated,1970-01-01 00:00:00\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n' +
      'ROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\nGLOBAL STATS\nMax bcast/mcast queue length,0\nEND\n',
  );
  assert.match(formatStatus(empty, 2, { utc: true }), /\nGLOBAL_STATS,dco_enabled,1\nEND\n$/);
  const s = snapshot(1795859859, 1795859856, 1194, 1, 2);
  const unnamed = { ...s, clients: [{ ...s.clients[0]!, commonName: undefined }] };
  assert.match(formatStatus(unnamed, 2, { utc: true }), /^CLIENT_LIST,UNDEF,10\.97\.0\.2:1194,/m);
  assert.equal(statusRealAddress('::ffff:192.0.2.1', 1194), '192.0.2.1:1194');
  assert.equal(statusRealAddress('2001:db8::1', 1194), '2001:db8::1');
  assert.equal(statusTime(at('09:57:34'), true), '2026-11-28 09:57:34');
});
