/**
 * Small tools for test/behaviour.test.ts that must run *inside* one of its network namespaces
 * (started as `ip netns exec btN node dist/test/helpers/behaviour-ns.js <mode> ...`):
 *
 *   iface-get <ifname>          prints the daemon's `iface-get` reply (pid, drops) as one JSON line
 *   junk <host> <port> <peer>   sends a fixed set of malformed and forged datagrams to the
 *                               interface's UDP port from a plain node:dgram socket, one at a
 *                               time, and prints what it sent as one JSON line
 *   udp-sink <host> <port>      prints `listening`, then receives datagrams made by udp-burst
 *                               until 1 s of silence; prints how many came, and how many of
 *                               them differ from what was sent
 *   udp-burst <host> <port> <bursts>  sends bursts of 32 datagrams of 300 bytes, the last of each
 *                               burst shorter, each numbered and filled from its number
 *
 * Everything else the tests do goes through ovpn-cli, as a user would.
 */

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { ControlClient } from '../../src/control/client.js';

// Watchdog only: turns a hang into a readable failure.
setTimeout(() => {
  console.error('behaviour-ns: timed out');
  process.exit(3);
}, 20_000).unref();

/** DATA_V2 header: opcode 9 << 3 | key-id, then the 24-bit peer-id. */
function dataV2(keyId: number, peerId: number, packetId: number | null, bodyLength: number): Buffer {
  const head = Buffer.alloc(packetId === null ? 4 : 8);
  head.writeUInt32BE(((((9 << 3) | keyId) << 24) | peerId) >>> 0, 0);
  if (packetId !== null) head.writeUInt32BE(packetId, 4);
  return Buffer.concat([head, randomBytes(bodyLength)]);
}

async function ifaceGet(ifname: string): Promise<unknown> {
  const client = await ControlClient.connect(ifname);
  try {
    return await client.request('iface-get');
  } finally {
    client.close();
  }
}

async function junk(host: string, port: number, peerId: number): Promise<unknown> {
  const datagrams: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one byte (DATA_V2 opcode alone)', Buffer.from([0x48])],
    ['three bytes (truncated DATA_V2 header)', Buffer.from([0x48, 0x00, 0x00])],
    ['DATA_V2 for an unknown peer-id', dataV2(0, 0x00abcd, 0x1000, 40)],
    ['DATA_V2 forged: random body, far-ahead packet-id', dataV2(0, peerId, 0x10000000, 60)],
    ['DATA_V2 with a key-id no slot holds', dataV2(5, peerId, 0x10000001, 60)],
    ['DATA_V2 with packet-id 0 (replay)', dataV2(0, peerId, 0, 60)],
    ['DATA_V2 shorter than the AEAD overhead', dataV2(0, peerId, 0x10000002, 2)],
    ['DATA_V1', Buffer.concat([Buffer.from([0x30]), randomBytes(40)])],
    ['CONTROL_HARD_RESET_CLIENT_V2', Buffer.concat([Buffer.from([0x38]), randomBytes(13)])],
    ['ACK_V1', Buffer.concat([Buffer.from([0x28]), randomBytes(9)])],
  ];
  const socket = dgram.createSocket('udp4');
  for (const [, data] of datagrams) {
    await new Promise<void>((resolve, reject) =>
      socket.send(data, port, host, (error) => (error ? reject(error) : resolve())),
    );
  }
  socket.close();
  return { sent: datagrams.map(([name, data]) => ({ name, hex: data.toString('hex') })) };
}

/** Datagram n of udp-burst: its number, its length, and bytes that follow from the number. */
function burstDatagram(n: number, size: number): Buffer {
  const d = Buffer.alloc(size);
  d.writeUInt32BE(n, 0);
  d.writeUInt16BE(size, 4);
  for (let i = 6; i < size; i++) d[i] = (n + i) & 0xff;
  return d;
}

async function udpBurst(host: string, port: number, bursts: number): Promise<unknown> {
  const socket = dgram.createSocket('udp4');
  let n = 0;
  for (let b = 0; b < bursts; b++) {
    const sends: Promise<void>[] = [];
    for (let k = 0; k < 32; k++, n++) {
      const data = burstDatagram(n, k < 31 ? 300 : 100 + (b % 50));
      sends.push(new Promise((resolve, reject) => socket.send(data, port, host, (e) => (e ? reject(e) : resolve()))));
    }
    await Promise.all(sends);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  socket.close();
  return { sent: n };
}

async function udpSink(host: string, port: number): Promise<unknown> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  let received = 0;
  let bad = 0;
  let quiet: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => socket.bind(port, host, resolve));
  console.log('listening');
  await new Promise<void>((resolve) => {
    quiet = setTimeout(resolve, 5_000);
    socket.on('message', (d) => {
      received++;
      if (d.length < 6 || !d.equals(burstDatagram(d.readUInt32BE(0), d.readUInt16BE(4)))) bad++;
      clearTimeout(quiet);
      quiet = setTimeout(resolve, 1_000);
    });
  });
  socket.close();
  return { received, bad };
}

const [mode, ...args] = process.argv.slice(2);
let result: unknown;
if (mode === 'iface-get') result = await ifaceGet(args[0] ?? 'tun0');
else if (mode === 'junk') result = await junk(args[0]!, Number(args[1]), Number(args[2]));
else if (mode === 'udp-burst') result = await udpBurst(args[0]!, Number(args[1]), Number(args[2]));
else if (mode === 'udp-sink') result = await udpSink(args[0]!, Number(args[1]));
else {
  console.error(`behaviour-ns: unknown mode ${String(mode)}`);
  process.exit(2);
}
console.log(JSON.stringify(result));
process.exit(0);
