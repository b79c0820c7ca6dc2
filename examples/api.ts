/**
 * The library API in one runnable piece: two interfaces joined by the in-memory network, a peer
 * and a key on each, one packet through the tunnel, its counters, the events, an error and its
 * code, and cleanup. Runs without root (`node dist/examples/api.js`); leave out `edges` and the
 * same calls drive a real TUN device and UDP sockets (as root).
 */
import { randomBytes } from 'node:crypto';
import { type KeyDirConfig, MemoryNetwork, OvpnError, OvpnInterface } from '../src/index.js';

export interface ExampleResult {
  delivered: Buffer;
  sent: Buffer;
  vpnTxPackets: number;
  linkTxBytes: number;
  errorCode: string;
  errorField: string | undefined;
  events: string[];
}

/** A minimal IPv4 packet (UDP protocol number, no checksum needed by the tunnel). */
function ipv4(source: string, destination: string, payload: string): Buffer {
  const body = Buffer.from(payload);
  const packet = Buffer.alloc(20 + body.length);
  packet[0] = 0x45; // version 4, 5 words of header
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64; // TTL
  packet[9] = 17; // UDP
  packet.set(source.split('.').map(Number), 12);
  packet.set(destination.split('.').map(Number), 16);
  body.copy(packet, 20);
  return packet;
}

export async function main(): Promise<ExampleResult> {
  const network = new MemoryNetwork();
  const hostA = network.host('10.0.0.1');
  const hostB = network.host('10.0.0.2');

  // Creation: one P2P interface per host. `await using` destroys each when the scope ends.
  await using a = OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hostA.edges });
  await using b = OvpnInterface.create({ name: 'tun0', mode: 'P2P', edges: hostB.edges });

  // Events: what the kernel module multicasts, as EventEmitter events.
  const events: string[] = [];
  for (const iface of [a, b]) {
    iface.on('peer-del-ntf', (e) => events.push(`${e.ifname}: peer ${e.peerId} deleted (${e.reason})`));
    iface.on('key-swap-ntf', (e) => events.push(`${e.ifname}: renegotiate key ${e.keyId} of peer ${e.peerId}`));
    iface.on('peer-float-ntf', (e) => events.push(`${e.ifname}: peer ${e.peerId} moved to ${e.remote.address}`));
    iface.on('warning', (e) => events.push(`${e.ifname}: warning: ${e.message}`));
    iface.on('closed', (e) => events.push(`${e.ifname}: closed (${e.reason})`));
  }

  // Peers: where each end is, and the address inside the tunnel.
  a.newPeer({ id: 1, localPort: 1194, remoteIpv4: '10.0.0.2', remotePort: 1194, vpnIpv4: '5.5.5.2' });
  b.newPeer({ id: 1, localPort: 1194, remoteIpv4: '10.0.0.1', remotePort: 1194, vpnIpv4: '5.5.5.1' });

  // Keys: one key per direction, fresh for this session; what A encrypts with, B decrypts with.
  const aToB: KeyDirConfig = { cipherKey: randomBytes(32), nonceTail: randomBytes(8) };
  const bToA: KeyDirConfig = { cipherKey: randomBytes(32), nonceTail: randomBytes(8) };
  const key = { peerId: 1, slot: 'primary', keyId: 0, cipherAlg: 'AES-256-GCM' } as const;
  a.newKey({ ...key, encryptDir: aToB, decryptDir: bToA });
  b.newKey({ ...key, encryptDir: bToA, decryptDir: aToB });

  // Traffic: a packet the kernel routes into A's TUN comes out of B's, sealed in between.
  const sent = ipv4('5.5.5.1', '5.5.5.2', 'hello through the tunnel');
  hostA.tun('tun0').inject(sent);
  const delivered = await hostB.tun('tun0').written.next();

  // Stats: per-peer VPN (inner) and LINK (outer) counters, and drops by reason.
  const peer = a.getPeer(1);
  console.log(
    `peer 1: ${peer.vpnTxPackets} packets, ${peer.linkTxBytes} bytes on the wire, ${peer.drops.auth} auth drops`,
  );
  console.log(`interface: ${JSON.stringify(a.info().drops)}`);

  // Errors: an OvpnError with an errno-style code and the field at fault.
  let errorCode = '';
  let errorField: string | undefined;
  try {
    a.setPeer({ id: 1, remoteIpv4: '10.0.0.2', remotePort: 70000 });
  } catch (error) {
    if (!(error instanceof OvpnError)) throw error;
    errorCode = error.code;
    errorField = error.field;
    console.log(`refused: ${error.code} ${error.field}: ${error.message}`);
  }

  // Cleanup: delete a peer (peer-del-ntf, reason USERSPACE); the interfaces go at the end of
  // the scope (every remaining peer TEARDOWN, then 'closed'), or call destroy() yourself.
  a.delPeer(1);
  return {
    delivered,
    sent,
    vpnTxPackets: peer.vpnTxPackets,
    linkTxBytes: peer.linkTxBytes,
    errorCode,
    errorField,
    events,
  };
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1])) {
  const result = await main();
  console.log(result.events.join('\n'));
}
