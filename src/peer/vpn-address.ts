/**
 * A peer's VPN addresses: parsing to bytes, printing back, and which addresses a multi-peer
 * interface refuses as a peer's VPN address.
 *
 * Upstream (drivers/net/ovpn, netlink.c) treats the unspecified address as "not configured",
 * requires at least one VPN address per peer in MP mode, refuses VPN addresses in P2P mode and
 * refuses an address another peer already has (the caller checks those three, they need state).
 * Beyond that the module accepts any address, but a packet to a loopback, multicast or
 * broadcast destination is never routed to one peer, and an IPv4-mapped or IPv4-compatible IPv6
 * address is an IPv4 peer in disguise; such a peer could never receive its traffic, so the
 * mistake is reported when it is made instead.
 */
import { isIP } from 'node:net';

export interface IpBytes {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** The 4 or 16 bytes of an IP address in text form, or null if it is not one (zone ids included). */
export function parseIpBytes(address: string): IpBytes | null {
  const family = isIP(address);
  if (family === 4) return { family, bytes: parseV4(address) };
  if (family === 6 && !address.includes('%')) return { family, bytes: parseV6(address) };
  return null;
}

function parseV4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.'), Number);
}

/** Expands `::` and a dotted IPv4 tail into eight 16-bit groups; isIP has vetted the syntax. */
function parseV6(text: string): Uint8Array {
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [parseInt(group, 16)];
      const v4 = parseV4(group);
      return [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    });
  };
  const gap = text.indexOf('::');
  const head = groups(gap < 0 ? text : text.slice(0, gap));
  const tail = gap < 0 ? [] : groups(text.slice(gap + 2));
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/** Text form of 4 or 16 address bytes; IPv6 as RFC 5952 (longest zero run of 2+ becomes `::`). */
export function formatIpBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, got ${bytes.length}`);
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let runAt = -1;
  let runLength = 1;
  for (let i = 0; i < 8; ) {
    let end = i;
    while (end < 8 && words[end] === 0) end++;
    if (end - i > runLength) [runAt, runLength] = [i, end - i];
    i = end === i ? i + 1 : end;
  }
  const hex = (part: number[]) => part.map((word) => word.toString(16)).join(':');
  if (runAt < 0) return hex(words);
  return `${hex(words.slice(0, runAt))}::${hex(words.slice(runAt + runLength))}`;
}

/**
 * Why `address` cannot be a peer's VPN address of the given family, or null if it can. The text
 * completes "vpn-ipv4 <address> ..." (or vpn-ipv6).
 */
export function vpnAddressProblem(address: string, family: 4 | 6): string | null {
  const parsed = parseIpBytes(address);
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
