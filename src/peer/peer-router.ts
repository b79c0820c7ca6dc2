/**
 * Transmit-side routing of a multi-peer interface: which peer an IP packet read from the TUN
 * goes to. Same rule as the kernel module, which asks the system routing table for the next hop
 * and then looks the peer up by VPN address: longest-prefix match over the kernel's routes via
 * this TUN (replaceSystemRoutes) and the routes attached to peers (addPeerRoute); a route with a
 * gateway sends to the peer whose VPN address is the gateway, a peer route to its peer, and no
 * match or a route without gateway to the peer whose VPN address is the destination itself.
 *
 * Cost per packet is one hash lookup per distinct prefix length present plus one for the
 * address, whatever the number of peers or routes. IPv4 keys are the address as an int32 (a
 * small integer for V8, so Map.get allocates nothing); IPv6 keys are a 32-bit hash of the four
 * address words, and a hit is confirmed by comparing the words.
 *
 * When a peer route and a system route have the same prefix, the peer route wins: it names its
 * peer outright. Among system routes with the same prefix the first one given wins (the watcher
 * orders them by metric).
 */
import { formatIp, type SystemRoute } from '../core/ip.js';

export type { SystemRoute };

export interface PeerRouteInfo {
  family: 4 | 6;
  address: string;
  prefixLen: number;
}

/** Four big-endian 32-bit words of an IPv6 address, as int32. */
type Words = [number, number, number, number];

/** A prefix as stored: the key it is filed under and what a match resolves to. */
interface RouteEntry<P> {
  /** Family of the prefix, its words (IPv4: only [0]) and length. */
  family: 4 | 6;
  words: Words;
  prefixLen: number;
  /** The peer this prefix was attached to with addPeerRoute, if any. */
  peer: P | undefined;
  /** A system route for this prefix is present (with or without gateway). */
  system: boolean;
  /** The system route's gateway, or null: then the destination is the next hop. */
  gateway: Gateway | null;
}

type Gateway = { family: 4; key: number } | { family: 6; words: Words };

/** A peer's state in the router: its VPN addresses and the prefixes attached to it. */
interface PeerEntry<P> {
  ipv4: number | null;
  ipv6: Words | null;
  /** Created with the first peer route: most peers have none, and an empty Set costs ~200 bytes. */
  routes: Set<RouteEntry<P>> | null;
}

// ---- address words -----------------------------------------------------------------------------

/** Where the addresses sit in an IPv4 and an IPv6 header. */
const IPV4_SRC = 12;
const IPV4_DST = 16;
const IPV6_SRC = 8;
const IPV6_DST = 24;

const readWord = (b: Uint8Array, at: number): number =>
  (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;

function wordsOf(bytes: Uint8Array): Words {
  if (bytes.length === 4) return [readWord(bytes, 0), 0, 0, 0];
  return [readWord(bytes, 0), readWord(bytes, 4), readWord(bytes, 8), readWord(bytes, 12)];
}

function bytesOf(family: 4 | 6, words: Words): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  const view = new DataView(out.buffer);
  for (let i = 0; i < out.length / 4; i++) view.setInt32(4 * i, words[i]!);
  return out;
}

/** Mask word for bits [32*i, 32*i+32) of a prefix of length len. */
function maskWord(len: number, i: number): number {
  const bits = Math.min(32, Math.max(0, len - 32 * i));
  return bits === 0 ? 0 : (-1 << (32 - bits)) | 0;
}

/** MASKS[len * 4 + i]: mask of word i for prefix length len (0..128). */
const MASKS = Int32Array.from({ length: 129 * 4 }, (_, k) => maskWord(k >> 2, k & 3));

/**
 * Mixes four int32 words into one int32 (a Smi on 64-bit V8 without pointer compression).
 * Exported so tests can build colliding keys.
 */
export function hash6(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0, 0x9e3779b1) ^ Math.imul(w1, 0x85ebca77) ^ Math.imul(w2, 0xc2b2ae3d) ^ Math.imul(w3, 0x27d4eb2f);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) | 0;
}

// ---- IPv6 keyed table ----------------------------------------------------------------------------

/** Hash-chained map from an IPv6 address (four words) to a value. */
class Table6<V> {
  private readonly buckets = new Map<number, Slot6<V>>();
  size = 0;

  get(w0: number, w1: number, w2: number, w3: number): V | undefined {
    for (let slot = this.buckets.get(hash6(w0, w1, w2, w3)); slot !== undefined; slot = slot.next) {
      if (slot.w0 === w0 && slot.w1 === w1 && slot.w2 === w2 && slot.w3 === w3) return slot.value;
    }
    return undefined;
  }

  set(w: Words, value: V): void {
    const h = hash6(...w);
    for (let slot = this.buckets.get(h); slot !== undefined; slot = slot.next) {
      if (slot.w0 === w[0] && slot.w1 === w[1] && slot.w2 === w[2] && slot.w3 === w[3]) {
        slot.value = value;
        return;
      }
    }
    this.buckets.set(h, { w0: w[0], w1: w[1], w2: w[2], w3: w[3], value, next: this.buckets.get(h) });
    this.size++;
  }

  delete(w: Words): void {
    const h = hash6(...w);
    let previous: Slot6<V> | undefined;
    for (let slot = this.buckets.get(h); slot !== undefined; previous = slot, slot = slot.next) {
      if (slot.w0 !== w[0] || slot.w1 !== w[1] || slot.w2 !== w[2] || slot.w3 !== w[3]) continue;
      if (previous !== undefined) previous.next = slot.next;
      else if (slot.next !== undefined) this.buckets.set(h, slot.next);
      else this.buckets.delete(h);
      this.size--;
      return;
    }
  }
}

interface Slot6<V> {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  value: V;
  next: Slot6<V> | undefined;
}

// ---- the router ------------------------------------------------------------------------------------

export class PeerRouter<P> {
  private readonly byVpn4 = new Map<number, P>();
  private readonly byVpn6 = new Table6<P>();
  private readonly peers = new Map<P, PeerEntry<P>>();
  /** Route tables by prefix length; the arrays of lengths present are kept longest first. */
  private readonly routes4: (Map<number, RouteEntry<P>> | undefined)[] = new Array(33).fill(undefined);
  private readonly routes6: (Table6<RouteEntry<P>> | undefined)[] = new Array(129).fill(undefined);
  private lengths4: number[] = [];
  private lengths6: number[] = [];
  private systemEntries: RouteEntry<P>[] = [];

  /** Sets (replaces) a peer's VPN addresses; null clears one. Throws if another peer has one of them. */
  setVpnAddresses(peer: P, ipv4: Uint8Array | null, ipv6: Uint8Array | null): void {
    checkLength(ipv4, 4, 'vpn-ipv4');
    checkLength(ipv6, 16, 'vpn-ipv6');
    for (const [family, bytes] of [
      [4, ipv4],
      [6, ipv6],
    ] as const) {
      const owner = bytes === null ? undefined : this.peerWithVpnAddress(family, bytes);
      if (owner !== undefined && owner !== peer) {
        throw new Error(
          `vpn-ipv${family} ${formatIp(bytes!)} is already assigned to another peer: delete that peer or pick another address`,
        );
      }
    }
    const entry = this.entryOf(peer);
    this.dropVpnAddresses(entry);
    if (ipv4 !== null) {
      entry.ipv4 = readWord(ipv4, 0);
      this.byVpn4.set(entry.ipv4, peer);
    }
    if (ipv6 !== null) {
      entry.ipv6 = wordsOf(ipv6);
      this.byVpn6.set(entry.ipv6, peer);
    }
  }

  peerWithVpnAddress(family: 4 | 6, bytes: Uint8Array): P | undefined {
    checkLength(bytes, family === 4 ? 4 : 16, `vpn-ipv${family}`);
    if (family === 4) return this.byVpn4.get(readWord(bytes, 0));
    const w = wordsOf(bytes);
    return this.byVpn6.get(w[0], w[1], w[2], w[3]);
  }

  /** Forgets a peer: its VPN addresses and the routes attached to it. */
  removePeer(peer: P): void {
    const entry = this.peers.get(peer);
    if (entry === undefined) return;
    this.dropVpnAddresses(entry);
    for (const route of entry.routes ?? []) {
      route.peer = undefined;
      this.fileAway(route);
    }
    this.peers.delete(peer);
  }

  /** Routes a prefix to a peer (OpenVPN's iroute). Throws if another peer already has this prefix. */
  addPeerRoute(peer: P, family: 4 | 6, dst: Uint8Array, prefixLen: number): void {
    const route = this.entryFor(family, dst, prefixLen, 'peer route');
    if (route.peer !== undefined && route.peer !== peer) {
      throw new Error(`peer route ${describe(route)} already belongs to another peer: remove it there first`);
    }
    route.peer = peer;
    const entry = this.entryOf(peer);
    entry.routes ??= new Set();
    entry.routes.add(route);
  }

  /** Detaches a prefix from a peer; false if the peer did not have it. */
  removePeerRoute(peer: P, family: 4 | 6, dst: Uint8Array, prefixLen: number): boolean {
    const route = this.find(family, wordsOf(checkPrefix(family, dst, prefixLen, 'peer route')), prefixLen);
    if (route === undefined || route.peer !== peer) return false;
    route.peer = undefined;
    this.peers.get(peer)?.routes?.delete(route);
    this.fileAway(route);
    return true;
  }

  peerRoutes(peer: P): PeerRouteInfo[] {
    const routes = [...(this.peers.get(peer)?.routes ?? [])];
    return routes.map((r) => ({
      family: r.family,
      address: formatIp(bytesOf(r.family, r.words)),
      prefixLen: r.prefixLen,
    }));
  }

  /** Replaces the kernel's routes via this TUN. For duplicate prefixes the first one counts. */
  replaceSystemRoutes(routes: SystemRoute[]): void {
    for (const route of routes) {
      checkPrefix(route.family, route.dst, route.prefixLen, 'system route');
      if (route.gateway !== null && route.gateway.length !== 4 && route.gateway.length !== 16) {
        throw new Error(`system route gateway must have 4 or 16 bytes, got ${route.gateway.length}`);
      }
    }
    for (const entry of this.systemEntries) {
      entry.system = false;
      entry.gateway = null;
      this.fileAway(entry);
    }
    this.systemEntries = [];
    for (const route of routes) {
      const entry = this.entryFor(route.family, route.dst, route.prefixLen, 'system route');
      if (entry.system) continue;
      entry.system = true;
      entry.gateway = gatewayOf(route.gateway);
      this.systemEntries.push(entry);
    }
  }

  /** The peer an IP packet at buf[offset..offset+size) goes to, or null. Allocates nothing. */
  route(buf: Uint8Array, offset: number, size: number): P | null {
    return this.lookup(buf, offset, size, IPV4_DST, IPV6_DST);
  }

  /**
   * The peer the same rule picks for the packet's source address: the peer a packet from that
   * source must have come from (the module's reverse-path check). Allocates nothing.
   */
  routeSource(buf: Uint8Array, offset: number, size: number): P | null {
    return this.lookup(buf, offset, size, IPV4_SRC, IPV6_SRC);
  }

  private lookup(buf: Uint8Array, offset: number, size: number, at4: number, at6: number): P | null {
    if (size < 1) return null;
    const version = buf[offset]! >> 4;
    if (version === 4 && size >= 20) return this.route4(readWord(buf, offset + at4));
    if (version === 6 && size >= 40) {
      const at = offset + at6;
      return this.route6(readWord(buf, at), readWord(buf, at + 4), readWord(buf, at + 8), readWord(buf, at + 12));
    }
    return null;
  }

  private route4(dst: number): P | null {
    const lengths = this.lengths4;
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      const route = this.routes4[len]!.get(dst & MASKS[len * 4]!);
      if (route !== undefined)
        return route.peer ?? (route.gateway === null ? (this.byVpn4.get(dst) ?? null) : this.viaGateway(route.gateway));
    }
    return this.byVpn4.get(dst) ?? null;
  }

  private route6(w0: number, w1: number, w2: number, w3: number): P | null {
    const lengths = this.lengths6;
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      const m = len * 4;
      const route = this.routes6[len]!.get(w0 & MASKS[m]!, w1 & MASKS[m + 1]!, w2 & MASKS[m + 2]!, w3 & MASKS[m + 3]!);
      if (route !== undefined) {
        return (
          route.peer ??
          (route.gateway === null ? (this.byVpn6.get(w0, w1, w2, w3) ?? null) : this.viaGateway(route.gateway))
        );
      }
    }
    return this.byVpn6.get(w0, w1, w2, w3) ?? null;
  }

  /** The peer whose VPN address is a route's gateway; none means the packet is dropped, as upstream. */
  private viaGateway(gw: Gateway): P | null {
    const peer =
      gw.family === 4 ? this.byVpn4.get(gw.key) : this.byVpn6.get(gw.words[0], gw.words[1], gw.words[2], gw.words[3]);
    return peer ?? null;
  }

  // ---- table upkeep (control path) -------------------------------------------------------------

  private entryOf(peer: P): PeerEntry<P> {
    let entry = this.peers.get(peer);
    if (entry === undefined) {
      entry = { ipv4: null, ipv6: null, routes: null };
      this.peers.set(peer, entry);
    }
    return entry;
  }

  private dropVpnAddresses(entry: PeerEntry<P>): void {
    if (entry.ipv4 !== null) this.byVpn4.delete(entry.ipv4);
    if (entry.ipv6 !== null) this.byVpn6.delete(entry.ipv6);
    entry.ipv4 = null;
    entry.ipv6 = null;
  }

  private find(family: 4 | 6, words: Words, prefixLen: number): RouteEntry<P> | undefined {
    if (family === 4) return this.routes4[prefixLen]?.get(words[0]);
    return this.routes6[prefixLen]?.get(...words);
  }

  /** The stored entry for a prefix, created empty if absent (callers fill it or file it away). */
  private entryFor(family: 4 | 6, dst: Uint8Array, prefixLen: number, what: string): RouteEntry<P> {
    const words = wordsOf(checkPrefix(family, dst, prefixLen, what));
    const existing = this.find(family, words, prefixLen);
    if (existing !== undefined) return existing;
    const entry: RouteEntry<P> = { family, words, prefixLen, peer: undefined, system: false, gateway: null };
    if (family === 4) {
      this.routes4[prefixLen] ??= new Map();
      this.routes4[prefixLen].set(words[0], entry);
    } else {
      this.routes6[prefixLen] ??= new Table6();
      this.routes6[prefixLen].set(words, entry);
    }
    this.refreshLengths(family);
    return entry;
  }

  /** Deletes an entry nothing refers to any more. */
  private fileAway(entry: RouteEntry<P>): void {
    if (entry.peer !== undefined || entry.system) return;
    if (entry.family === 4) this.routes4[entry.prefixLen]?.delete(entry.words[0]);
    else this.routes6[entry.prefixLen]?.delete(entry.words);
    this.refreshLengths(entry.family);
  }

  private refreshLengths(family: 4 | 6): void {
    const tables = family === 4 ? this.routes4 : this.routes6;
    const present: number[] = [];
    for (let len = tables.length - 1; len >= 0; len--) if ((tables[len]?.size ?? 0) > 0) present.push(len);
    if (family === 4) this.lengths4 = present;
    else this.lengths6 = present;
  }
}

function gatewayOf(bytes: Uint8Array | null): Gateway | null {
  if (bytes === null) return null;
  return bytes.length === 4 ? { family: 4, key: readWord(bytes, 0) } : { family: 6, words: wordsOf(bytes) };
}

function describe(route: RouteEntry<unknown>): string {
  return `${formatIp(bytesOf(route.family, route.words))}/${route.prefixLen}`;
}

function checkLength(bytes: Uint8Array | null, length: number, what: string): void {
  if (bytes !== null && bytes.length !== length)
    throw new Error(`${what} must have ${length} bytes, got ${bytes.length}`);
}

/** Validates a prefix as the kernel does for `ip route add`: family, length, no host bits. */
function checkPrefix(family: 4 | 6, dst: Uint8Array, prefixLen: number, what: string): Uint8Array {
  if (family !== 4 && family !== 6) throw new Error(`${what} family must be 4 or 6, got ${String(family)}`);
  const bytes = family === 4 ? 4 : 16;
  checkLength(dst, bytes, `${what} destination`);
  const max = bytes * 8;
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) {
    throw new Error(`${what} prefix length must be an integer from 0 to ${max}, got ${String(prefixLen)}`);
  }
  const words = wordsOf(dst);
  if (words.some((word, i) => (word & ~MASKS[prefixLen * 4 + i]!) !== 0)) {
    const masked = bytesOf(family, words.map((word, i) => word & MASKS[prefixLen * 4 + i]!) as Words);
    throw new Error(`${what} ${formatIp(dst)}/${prefixLen} has host bits set: use ${formatIp(masked)}/${prefixLen}`);
  }
  return dst;
}
