/**
 * IP addresses and prefixes in binary form: the one place that turns their text into bytes and
 * back. Endpoints, VPN addresses, routes and the control protocol all go through here, so every
 * layer agrees on what an address is (zone ids, IPv4-mapped forms, prefix syntax).
 */
import { isIP } from 'node:net';

export interface IpBytes {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Prefix extends IpBytes {
  prefixLen: number;
}

/** A route as the kernel's routing table holds it: where to, and through which gateway. */
export interface SystemRoute {
  family: 4 | 6;
  /** 4 or 16 bytes, host bits zero. */
  dst: Uint8Array;
  prefixLen: number;
  /** 4 or 16 bytes (an IPv4 route may have an IPv6 gateway), or null for a directly reached prefix. */
  gateway: Uint8Array | null;
}

/** The 4 or 16 bytes of an IP address in text form, or null if it is not one (zone ids included). */
export function parseIp(address: string): IpBytes | null {
  const family = isIP(address);
  if (family === 4) return { family, bytes: parseV4(address) };
  if (family === 6 && !address.includes('%')) return { family, bytes: parseV6(address) };
  return null;
}

/**
 * An address as a socket reports it: a zone id is dropped (the interface index travels on its
 * own) and an IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) becomes the
 * IPv4 address it stands for.
 */
export function parseSocketAddress(address: string): IpBytes | null {
  const zone = address.indexOf('%');
  const parsed = parseIp(zone < 0 ? address : address.slice(0, zone));
  if (parsed === null || parsed.family === 4 || !isV4Mapped(parsed.bytes)) return parsed;
  return { family: 4, bytes: parsed.bytes.slice(12) };
}

/** ::ffff:a.b.c.d */
function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

function parseV4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.'), Number);
}

/** Expands `::` and a dotted IPv4 tail into eight 16-bit groups; isIP has vetted the syntax. */
function parseV6(text: string): Uint8Array {
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [Number.parseInt(group, 16)];
      const v4 = parseV4(group);
      return [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    });
  };
  const gap = text.indexOf('::');
  const head = groups(gap < 0 ? text : text.slice(0, gap));
  const tail = gap < 0 ? [] : groups(text.slice(gap + 2));
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [i, word] of words.entries()) {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  }
  return bytes;
}

/** Text form of 4 or 16 address bytes; IPv6 as RFC 5952 (longest zero run of 2+ becomes `::`). */
export function formatIp(bytes: Uint8Array): string {
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
 * `10.1.0.0/16`, `fd00::/64`, or a bare address (a host prefix). Null when it is none of these
 * or the length is out of range; host bits are left as given.
 */
export function parsePrefix(text: string): Prefix | null {
  const [address, length, extra] = text.split('/');
  const parsed = address === undefined ? null : parseIp(address);
  if (parsed === null || extra !== undefined || length === '') return null;
  const max = parsed.family === 4 ? 32 : 128;
  const prefixLen = length === undefined ? max : Number(length);
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) return null;
  return { ...parsed, prefixLen };
}
