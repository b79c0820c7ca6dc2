/**
 * Which addresses a multi-peer interface refuses as a peer's VPN address.
 *
 * Upstream (drivers/net/ovpn, netlink.c) treats the unspecified address as "not configured",
 * requires at least one VPN address per peer in MP mode, refuses VPN addresses in P2P mode and
 * refuses an address another peer already has (the caller checks those three, they need state).
 * Beyond that the module accepts any address, but a packet to a loopback, multicast or
 * broadcast destination is never routed to one peer, and an IPv4-mapped or IPv4-compatible IPv6
 * address is an IPv4 peer in disguise; such a peer could never receive its traffic, so the
 * mistake is reported when it is made instead.
 */
import { parseIp } from '../core/ip.js';

/**
 * Why `address` cannot be a peer's VPN address of the given family, or null if it can. The text
 * completes "vpn-ipv4 <address> ..." (or vpn-ipv6).
 */
export function vpnAddressProblem(address: string, family: 4 | 6): string | null {
  const parsed = parseIp(address);
  if (parsed === null || parsed.family !== family) return `is not an IPv${family} address`;
  return family === 4 ? ipv4Problem(parsed.bytes) : ipv6Problem(parsed.bytes);
}

function ipv4Problem(b: Uint8Array): string | null {
  if (b.every((byte) => byte === 0)) return 'is the unspecified address';
  if (b.every((byte) => byte === 255)) return 'is the broadcast address';
  if (b[0] === 0) return 'is in 0.0.0.0/8, which only a host without an address uses as its source';
  if (b[0] === 127) return 'is a loopback address';
  if (b[0]! >> 4 === 0xe) return 'is a multicast address';
  return null;
}

function ipv6Problem(b: Uint8Array): string | null {
  if (b[0] === 0xff) return 'is a multicast address';
  // Everything below concerns ::/80, i.e. the first ten bytes zero.
  if (b.subarray(0, 10).some((byte) => byte !== 0)) return null;
  const word5 = (b[10]! << 8) | b[11]!;
  if (word5 === 0xffff) return 'is an IPv4-mapped IPv6 address';
  if (word5 !== 0) return null;
  const low = b.subarray(12);
  if (low.every((byte) => byte === 0)) return 'is the unspecified address';
  if (low[0] === 0 && low[1] === 0 && low[2] === 0 && low[3] === 1) return 'is a loopback address';
  return 'is an IPv4-compatible IPv6 address';
}
