/**
 * The peers of an interface: by id, the one peer of a point-to-point interface, and by VPN
 * address and route for multi-peer transmit (peer/peer-router.ts). Which peer a packet belongs
 * to is answered here, for both data paths.
 */
import { ENDPOINT_SIZE, sameRemoteAddress } from '../core/endpoint.js';
import type { IpBytes, Prefix, SystemRoute } from '../core/ip.js';
import type { Peer } from '../peer/peer.js';
import { PeerRouter } from '../peer/peer-router.js';
import type { InterfaceMode } from './api.js';

export class PeerTable {
  private readonly byId = new Map<number, Peer>();
  private readonly router = new PeerRouter<Peer>();
  private p2p: Peer | null = null;

  constructor(readonly mode: InterfaceMode) {}

  /** The peer of a point-to-point interface, if it has one. */
  get pointToPointPeer(): Peer | null {
    return this.p2p;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: number): Peer | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<Peer> {
    return this.byId.values();
  }

  /** P2P: the caller has removed the previous peer. */
  add(peer: Peer): void {
    this.byId.set(peer.id, peer);
    if (this.mode === 'P2P') this.p2p = peer;
  }

  remove(peer: Peer): void {
    this.byId.delete(peer.id);
    this.router.removePeer(peer);
    if (this.p2p === peer) this.p2p = null;
  }

  /** Which peer a packet read from the TUN goes to: P2P the one peer, MP by address and routes. */
  route(buf: Buffer, offset: number, size: number): Peer | null {
    return this.mode === 'P2P' ? this.p2p : this.router.route(buf, offset, size);
  }

  /** The UDP peer on `localPort` at the IP address in endpoint slot i: for control packets only. */
  atRemoteAddress(localPort: number, endpoints: Buffer, i: number): Peer | null {
    if (endpoints.length < (i + 1) * ENDPOINT_SIZE) return null;
    for (const peer of this.byId.values()) {
      if (peer.transport !== 'udp' || peer.localPort !== localPort) continue;
      if (sameRemoteAddress(peer.endpoint, 0, endpoints, i)) return peer;
    }
    return null;
  }

  vpnAddressOwner(address: IpBytes): Peer | undefined {
    return this.router.peerWithVpnAddress(address.family, address.bytes);
  }

  setVpnAddresses(peer: Peer, ipv4: Uint8Array | null, ipv6: Uint8Array | null): void {
    this.router.setVpnAddresses(peer, ipv4, ipv6);
  }

  addRoute(peer: Peer, prefix: Prefix): void {
    this.router.addPeerRoute(peer, prefix.family, prefix.bytes, prefix.prefixLen);
  }

  removeRoute(peer: Peer, prefix: Prefix): boolean {
    return this.router.removePeerRoute(peer, prefix.family, prefix.bytes, prefix.prefixLen);
  }

  routesOf(peer: Peer): string[] {
    return this.router.peerRoutes(peer).map((r) => `${r.address}/${r.prefixLen}`);
  }

  replaceSystemRoutes(routes: SystemRoute[]): void {
    this.router.replaceSystemRoutes(routes);
  }
}
