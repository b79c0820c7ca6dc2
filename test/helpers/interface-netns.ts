/**
 * Scenarios for test/interface.test.ts, each run *inside a private network namespace* (the test
 * starts this file under `unshare --net`): an OvpnInterface in-process with a real TUN, and
 * "remote peers" made of plain node:dgram / node:net sockets on loopback that seal and open
 * packets with the core's KeyContext. The last stdout line is `RESULT <json>`; the test asserts
 * on it, so a failure shows what was actually seen.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { KeyContext } from '../../src/core/key-context.js';
import { type OvpnError, OvpnInterface, type PeerConfig } from '../../src/device/ovpn-interface.js';
import { errorOf } from './errors.js';
import { installKey, keyPair, sealOne } from './keys.js';
import { ipv4Packet, ipv6Packet } from './packets.js';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

// Watchdog only: every wait below is on an event; this turns a hang into a readable failure.
setTimeout(() => {
  console.error('interface-netns: scenario timed out');
  process.exit(3);
}, 20_000).unref();

function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function mpInterface(name: string, followSystemRoutes = true): OvpnInterface {
  ip('link', 'set', 'lo', 'up');
  const iface = OvpnInterface.create({ name, mode: 'MP', followSystemRoutes });
  ip('addr', 'add', '5.5.5.1/24', 'dev', name);
  ip('link', 'set', name, 'up');
  return iface;
}

const udpPeer = (id: number, vpnIpv4: string, remotePort = 40000 + id): PeerConfig => ({
  id,
  remoteIpv4: '127.0.0.1',
  remotePort,
  localPort: 1,
  vpnIpv4,
});

/** peerForPacket for VPN addresses, kernel routes followed live, and routes attached by the library. */
async function routing(): Promise<unknown> {
  const iface = mpInterface('ovm0');
  const routed = (packet: Buffer) => iface.peerForPacket(packet);
  const changed = () => once(iface, 'routes-changed');
  await changed();
  iface.newPeer(udpPeer(2, '5.5.5.2'));
  iface.newPeer({ ...udpPeer(3, '5.5.5.3'), vpnIpv6: 'fc00:5::3' });
  const result: Record<string, unknown> = {};
  result.byVpnAddress = [
    routed(ipv4Packet('5.5.5.1', '5.5.5.2')),
    routed(ipv4Packet('5.5.5.1', '5.5.5.3')),
    routed(ipv6Packet('fc00:5::3')),
  ];
  result.unknown = routed(ipv4Packet('5.5.5.1', '11.11.11.11'));

  let next = changed();
  ip('route', 'add', '11.11.11.11', 'via', '5.5.5.2', 'dev', 'ovm0');
  await next;
  result.viaPeer2 = routed(ipv4Packet('5.5.5.1', '11.11.11.11'));
  next = changed();
  ip('route', 'replace', '11.11.11.11', 'via', '5.5.5.3', 'dev', 'ovm0');
  await next;
  result.viaPeer3 = routed(ipv4Packet('5.5.5.1', '11.11.11.11'));
  next = changed();
  ip('route', 'del', '11.11.11.11', 'dev', 'ovm0');
  await next;
  result.afterDelete = routed(ipv4Packet('5.5.5.1', '11.11.11.11'));

  iface.addRoute(2, '10.1.0.0/16');
  result.attached = [routed(ipv4Packet('5.5.5.1', '10.1.2.3')), routed(ipv4Packet('5.5.5.1', '10.2.0.1'))];
  result.routesOf2 = iface.getRoutes(2);
  iface.delRoute(2, '10.1.0.0/16');
  result.attachedAfterDel = routed(ipv4Packet('5.5.5.1', '10.1.2.3'));
  result.badPrefix = errorOf(() => iface.addRoute(2, '10.1.0.0/33'));
  iface.delPeer(2);
  result.afterPeerDel = routed(ipv4Packet('5.5.5.1', '5.5.5.2'));
  iface.destroy();
  return result;
}

/** Frames packets as OpenVPN does over TCP: a 2-byte big-endian length before each. */
function framed(...packets: Buffer[]): Buffer {
  return Buffer.concat(packets.flatMap((p) => [Buffer.from([p.length >> 8, p.length & 0xff]), p]));
}

/**
 * TCP: a listening peer takes the next connection; packets framed over it authenticate and
 * reach the TUN; a control packet goes up; closing the stream deletes the peer with
 * TRANSPORT_DISCONNECT, and a stream with an impossible length gets TRANSPORT_ERROR.
 */
async function tcp(): Promise<unknown> {
  const iface = mpInterface('ovm0', false);
  const [ours, theirs] = keyPair('AES-256-GCM');
  const remote = new KeyContext(theirs);
  const deleted: unknown[] = [];
  const controls: unknown[] = [];
  iface.on('peer-del-ntf', (e) => deleted.push({ peerId: e.peerId, reason: e.reason }));
  iface.on('packet-ntf', (e) => controls.push({ peerId: e.peerId, data: e.data.toString('hex') }));
  await iface.newTcpPeer({ id: 1, transport: 'tcp', localPort: 1194, vpnIpv4: '5.5.5.2' });
  await iface.newTcpPeer({ id: 2, transport: 'tcp', localPort: 1194, vpnIpv4: '5.5.5.3' });
  installKey(iface, 1, ours);
  const waiting = iface.getPeer(1);

  const client = net.connect(1194, '127.0.0.1');
  await once(client, 'connect');
  const control = Buffer.from([0x38, 1, 2, 3, 4]);
  const data = sealOne(remote, ipv4Packet('5.5.5.2', '5.5.5.1', 'over-tcp'), 1);
  const gotControl = once(iface, 'packet-ntf');
  // One write carrying two packets, then a packet split across writes.
  client.write(framed(control, data));
  const second = framed(sealOne(remote, ipv4Packet('5.5.5.2', '5.5.5.1', 'split'), 1));
  client.write(second.subarray(0, 3));
  await gotControl;
  client.write(second.subarray(3));
  while (iface.getPeer(1).vpnRxPackets < 2) await new Promise((resolve) => setImmediate(resolve));
  const attached = { remotePortBefore: waiting.remotePort ?? null, peer: pick(iface.getPeer(1)) };

  const gone = once(iface, 'peer-del-ntf');
  client.end();
  await gone;

  // A stranger's connection, given to waiting peer 2, breaks the framing before anything of it
  // authenticated: it is closed, and peer 2 waits for its real client instead of being deleted.
  const bad = net.connect(1194, '127.0.0.1');
  await once(bad, 'connect');
  bad.write(Buffer.from([0, 0]));
  const badClosed =
    bad.destroyed || (await Promise.race([once(bad, 'close').then(() => true), once(bad, 'end').then(() => true)]));
  bad.destroy();
  const peer2AfterStranger = pick(iface.getPeer(2));

  // Peer 2's real client: its packets authenticate, so the same breakage now ends peer 2.
  const [ours2, theirs2] = keyPair('AES-256-GCM');
  installKey(iface, 2, ours2);
  const real = net.connect(1194, '127.0.0.1');
  await once(real, 'connect');
  real.write(framed(sealOne(new KeyContext(theirs2), ipv4Packet('5.5.5.3', '5.5.5.1', 'real'), 2)));
  while (iface.getPeer(2).vpnRxPackets < 1) await new Promise((resolve) => setImmediate(resolve));
  const gone2 = once(iface, 'peer-del-ntf');
  real.write(Buffer.from([0, 0]));
  await gone2;
  real.destroy();
  const connectRefused = await iface
    .newTcpPeer({ id: 9, transport: 'tcp', remoteIpv4: '127.0.0.1', remotePort: 9, vpnIpv4: '5.5.5.9' })
    .then(
      () => null,
      (error: OvpnError) => ({ code: error.code, message: error.message }),
    );
  iface.destroy();
  return { controls, attached, deleted, badClosed, peer2AfterStranger, connectRefused };
}

function pick(info: ReturnType<OvpnInterface['getPeer']>): Record<string, unknown> {
  return {
    transport: info.transport,
    vpnRxPackets: info.vpnRxPackets,
    linkRxPackets: info.linkRxPackets,
    remoteIpv4: info.remoteIpv4,
  };
}

/** The longest name Linux takes (15 characters, IFNAMSIZ 16 with its NUL) makes a TUN. */
function longName(): unknown {
  const iface = OvpnInterface.create({ name: 'ovn15charsname0', followSystemRoutes: false });
  const name = iface.name;
  iface.destroy();
  return { name };
}

const SCENARIOS: Record<string, () => unknown> = { routing, tcp, 'long-name': longName };

const name = process.argv[2] ?? '';
const scenario = SCENARIOS[name];
if (scenario === undefined) {
  console.error(`unknown scenario ${name}: one of ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}
Promise.resolve()
  .then(scenario)
  .then((result) => {
    report(result);
    process.exit(0);
  })
  .catch((error: unknown) => {
    console.error((error as Error).stack ?? String(error));
    process.exit(1);
  });
