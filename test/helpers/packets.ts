/** Inner packets for the tunnel: just enough IP header for routing, and a payload to recognise. */
import { parseIp } from '../../src/core/ip.js';

/** An IPv4 packet header (20 bytes, UDP protocol) plus payload, from src to dst: enough for routing. */
export function ipv4Packet(src: string, dst: string, payload = 'x'): Buffer {
  const body = Buffer.from(payload);
  const packet = Buffer.alloc(20 + body.length);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64;
  packet[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(packet, 12);
  Buffer.from(dst.split('.').map(Number)).copy(packet, 16);
  body.copy(packet, 20);
  return packet;
}

/** A bare IPv6 header (40 bytes) to dst. */
export function ipv6Packet(dst: string): Buffer {
  const packet = Buffer.alloc(40);
  packet[0] = 0x60;
  packet.set(parseIp(dst)!.bytes, 24);
  return packet;
}

/** A packet as OpenVPN sends it over TCP: after its 2-byte length. */
export function framed(packet: Buffer): Buffer {
  const out = Buffer.alloc(2 + packet.length);
  out.writeUInt16BE(packet.length, 0);
  packet.copy(out, 2);
  return out;
}
