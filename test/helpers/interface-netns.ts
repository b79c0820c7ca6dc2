/**
 * Scenarios for test/interface.test.ts, each run *inside a private network namespace* (the test
 * starts this file under `unshare --net`): an OvpnInterface in-process with a real TUN, and
 * "remote peers" made of plain node:dgram / node:net sockets on loopback that seal and open
 * packets with the core's KeyContext. The last stdout line is `RESULT <json>`; the test asserts
 * on it, so a failure shows what was actually seen.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { KeyContext } from '../../src/core/key-context.js';
import { OvpnError, OvpnInterface, type PeerConfig } from '../../src/device/ovpn-interface.js';
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

function errorOf(f: () => unknown): { code: string; field?: string; message: string } | null {
  try {
    f();
    return null;
  } catch (error) {
    if (!(error instanceof OvpnError)) throw error;
    return { code: error.code, ...(error.field === undefined ? {} : { field: error.field }), message: error.message };
  }
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

/** Every VPN address rule of the upstream module, and the duplicate rule. */
function validation(): unknown {
  const iface = mpInterface('ovm0', false);
  const tries: Record<string, PeerConfig> = {
    missing: { id: 1, remoteIpv4: '127.0.0.1', remotePort: 1, localPort: 1 },
    unspecified4: udpPeer(1, '0.0.0.0'),
    loopback4: udpPeer(1, '127.0.0.1'),
    multicast4: udpPeer(1, '224.0.0.1'),
    broadcast4: udpPeer(1, '255.255.255.255'),
    unspecified6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::' },
    loopback6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::1' },
    multicast6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: 'ff02::1' },
    mapped6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::ffff:192.0.2.1' },
    compatible6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::192.0.2.1' },
    notAnAddress: udpPeer(1, '5.5.5'),
  };
  const errors: Record<string, unknown> = {};
  for (const [name, config] of Object.entries(tries)) errors[name] = errorOf(() => iface.newPeer(config));
  const peersAfterRefusals = iface.getPeers().length;
  iface.newPeer({ ...udpPeer(1, '5.5.5.2'), vpnIpv6: 'fc00:5::2' });
  errors.duplicate4 = errorOf(() => iface.newPeer(udpPeer(2, '5.5.5.2')));
  errors.duplicate6 = errorOf(() => iface.newPeer({ ...udpPeer(2, '5.5.5.3'), vpnIpv6: 'fc00:5::2' }));
  errors.setToOthers = (() => {
    iface.newPeer(udpPeer(3, '5.5.5.4'));
    return errorOf(() => iface.setPeer({ id: 3, vpnIpv4: '5.5.5.2' }));
  })();
  // Deleting a peer frees its address.
  iface.delPeer(1);
  errors.reuseAfterDelete = errorOf(() => iface.newPeer(udpPeer(2, '5.5.5.2')));
  iface.destroy();
  return { errors, peersAfterRefusals };
}

/** routePacket for VPN addresses, kernel routes followed live, and routes attached by the library. */
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

/**
 * Real traffic through the TUN in MP mode: datagrams sent into the TUN towards each peer's VPN
 * address (and through a route) come out of the interface's UDP socket at that peer's address,
 * sealed with that peer's id.
 */
async function transmitMp(): Promise<unknown> {
  const iface = mpInterface('ovm0');
  await once(iface, 'routes-changed');
  const remotes = await Promise.all(
    [2, 3].map(async () => {
      const socket = dgram.createSocket('udp4');
      socket.bind(0, '127.0.0.1');
      await once(socket, 'listening');
      return socket;
    }),
  );
  const keys: KeyContext[] = [];
  for (const [i, id] of [2, 3].entries()) {
    iface.newPeer(udpPeer(id, `5.5.5.${id}`, remotes[i]!.address().port));
    const [ours, theirs] = keyPair('AES-256-GCM');
    installKey(iface, id, ours);
    keys.push(new KeyContext(theirs));
  }
  const next = once(iface, 'routes-changed');
  ip('route', 'add', '11.11.11.11', 'via', '5.5.5.3', 'dev', 'ovm0');
  await next;

  const arrivals: Record<string, { peerId: number; payload: string }[]> = { '2': [], '3': [] };
  for (const [i, socket] of remotes.entries()) {
    socket.on('message', (msg) => {
      const copy = Buffer.from(msg);
      const length = keys[i]!.open(copy, 0, copy.length);
      const payload =
        length < 0 ? `error ${length}` : copy.subarray(keys[i]!.overhead + 28, keys[i]!.overhead + length).toString();
      arrivals[String(i + 2)]!.push({ peerId: msg.readUIntBE(1, 3), payload });
    });
  }
  const sender = dgram.createSocket('udp4');
  const all = Promise.all([once(remotes[0]!, 'message'), once(remotes[1]!, 'message')]);
  sender.send('to-peer-2', 9, '5.5.5.2');
  sender.send('to-lan-behind-3', 9, '11.11.11.11');
  await all;
  sender.send('to-nobody', 9, '5.5.5.77');
  // The unroutable datagram must be counted; wait for the drop counter rather than a fixed time.
  while (iface.drops.noRoute === 0) await new Promise((resolve) => setImmediate(resolve));
  const result = {
    arrivals,
    noRoute: iface.drops.noRoute,
    txPackets: [2, 3].map((id) => iface.getPeer(id).vpnTxPackets),
  };
  sender.close();
  for (const socket of remotes) socket.close();
  iface.destroy();
  return result;
}

/**
 * Float: an authenticated packet from a new source port moves the peer there and notifies once;
 * a forged packet (bad tag) from yet another port moves nothing.
 */
async function float(): Promise<unknown> {
  const iface = mpInterface('ovm0', false);
  const [ours, theirs] = keyPair('CHACHA20-POLY1305');
  iface.newPeer(udpPeer(1, '5.5.5.2', 40001));
  installKey(iface, 1, ours);
  const remote = new KeyContext(theirs);
  const floats: unknown[] = [];
  iface.on('peer-float-ntf', (e) => floats.push({ peerId: e.peerId, port: e.remote.port, address: e.remote.address }));
  const port = iface.getPeer(1).localPort;
  const sockets = await Promise.all(
    [0, 1, 2].map(async () => {
      const socket = dgram.createSocket('udp4');
      socket.bind(0, '127.0.0.1');
      await once(socket, 'listening');
      return socket;
    }),
  );
  const arrived = () => iface.getPeer(1).linkRxPackets;
  const send = async (socket: dgram.Socket, wire: Buffer) => {
    const before = arrived();
    socket.send(wire, port, '127.0.0.1');
    while (arrived() === before) await new Promise((resolve) => setImmediate(resolve));
  };
  const packet = ipv4Packet('5.5.5.2', '5.5.5.1', 'hello');
  await send(sockets[0]!, sealOne(remote, packet, 1));
  const first = { port: iface.getPeer(1).remotePort, floats: floats.length };
  const forged = Buffer.from(sealOne(remote, packet, 1));
  forged[forged.length - 1]! ^= 1;
  await send(sockets[1]!, forged);
  const afterForged = { port: iface.getPeer(1).remotePort, floats: floats.length, auth: iface.getPeer(1).drops.auth };
  await send(sockets[2]!, sealOne(remote, packet, 1));
  await send(sockets[2]!, sealOne(remote, packet, 1));
  const afterMove = { port: iface.getPeer(1).remotePort, floats };
  const ports = sockets.map((s) => s.address().port);
  for (const socket of sockets) socket.close();
  iface.destroy();
  return { ports, first, afterForged, afterMove };
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

  const bad = net.connect(1194, '127.0.0.1');
  await once(bad, 'connect');
  const gone2 = once(iface, 'peer-del-ntf');
  bad.write(Buffer.from([0, 0]));
  await gone2;
  const badClosed =
    bad.destroyed || (await Promise.race([once(bad, 'close').then(() => true), once(bad, 'end').then(() => true)]));
  bad.destroy();
  const connectRefused = await iface
    .newTcpPeer({ id: 9, transport: 'tcp', remoteIpv4: '127.0.0.1', remotePort: 9, vpnIpv4: '5.5.5.9' })
    .then(
      () => null,
      (error: OvpnError) => ({ code: error.code, message: error.message }),
    );
  iface.destroy();
  return { controls, attached, deleted, badClosed, connectRefused };
}

function pick(info: ReturnType<OvpnInterface['getPeer']>): Record<string, unknown> {
  return {
    transport: info.transport,
    vpnRxPackets: info.vpnRxPackets,
    linkRxPackets: info.linkRxPackets,
    remoteIpv4: info.remoteIpv4,
  };
}

const SCENARIOS: Record<string, () => unknown> = { validation, routing, 'transmit-mp': transmitMp, float, tcp };

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
