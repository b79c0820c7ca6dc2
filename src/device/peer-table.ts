/**
 * The peers of an interface: by id, the one peer of a point-to-point interface, and by VPN
 * address and route for multi-peer transmit (peer/peer-router.ts). Which peer a packet belongs
 * to is answered here, for both data paths, and so is whether a new peer's id and VPN addresses
 * are free.
 */
import { ENDPOINT_SIZE, hasRemote, remoteKey } from '../core/endpoint.js';
import { type Prefix, parseIp, type SystemRoute } from '../core/ip.js';
import type { Peer } from '../peer/peer.js';
import { PeerRouter } from '../peer/peer-router.js';
import { type InterfaceMode, OvpnError, type PeerConfig } from './api.js';
import { checkKeepalive, checkPeerId, vpnAddressesOf } from './policy.js';

export class PeerTable {
  private readonly byId = new Map<number, Peer>();
  private readonly router = new PeerRouter<Peer>();
  private p2p: Peer | null = null;
  /**
   * UDP peers by where they are, so that a packet without a usable peer-id finds its peer in one
   * lookup whatever the number of peers: by local port and remote address and port, and by local
   * port and remote host (peers behind one NAT share a host: the first added answers for it).
   */
  private readonly byRemote = new Map<string, Peer>();
  private readonly byRemoteHost = new Map<string, Peer[]>();
  private readonly remoteKeys = new Map<Peer, { exact: string; host: string }>();

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
    this.unindex(peer);
    this.byId.delete(peer.id);
    this.router.removePeer(peer);
    if (this.p2p === peer) this.p2p = null;
  }

  /** Which peer a packet read from the TUN goes to: P2P the one peer, MP by address and routes. */
  route(buf: Buffer, offset: number, size: number): Peer | null {
    return this.mode === 'P2P' ? this.p2p : this.router.route(buf, offset, size);
  }

  /**
   * P2P: always (the one peer may send anything). MP: only when the routing rule for the
   * packet's source address picks this very peer, as the module's ovpn_peer_check_by_src does,
   * so a client cannot send as another client or as an address nobody routes to it.
   */
  sourceAllowed(peer: Peer, buf: Buffer, offset: number, size: number): boolean {
    return this.mode === 'P2P' || this.router.routeSource(buf, offset, size) === peer;
  }

  /** The peer's remote address changed (added, set, floated): file it under the new one. */
  moved(peer: Peer): void {
    this.unindex(peer);
    if (peer.transport !== 'udp' || !hasRemote(peer.endpoint, 0)) return;
    const keys = {
      exact: `${peer.localPort}/${remoteKey(peer.endpoint, 0)}`,
      host: `${peer.localPort}/${remoteKey(peer.endpoint, 0, false)}`,
    };
    this.remoteKeys.set(peer, keys);
    this.byRemote.set(keys.exact, peer);
    const sharing = this.byRemoteHost.get(keys.host);
    if (sharing === undefined) this.byRemoteHost.set(keys.host, [peer]);
    else sharing.push(peer);
  }

  /** The UDP peer on `localPort` at exactly the remote address and port of endpoint slot i. */
  atRemote(localPort: number, endpoints: Buffer, i: number): Peer | null {
    if (endpoints.length < (i + 1) * ENDPOINT_SIZE) return null;
    return this.byRemote.get(`${localPort}/${remoteKey(endpoints, i)}`) ?? null;
  }

  /**
   * The UDP peer a control packet from endpoint slot i belongs to: the one at that address and
   * port, else one at that host (a control plane may talk from another port of the same host).
   */
  atRemoteAddress(localPort: number, endpoints: Buffer, i: number): Peer | null {
    const exact = this.atRemote(localPort, endpoints, i);
    if (exact !== null || endpoints.length < (i + 1) * ENDPOINT_SIZE) return exact;
    return this.byRemoteHost.get(`${localPort}/${remoteKey(endpoints, i, false)}`)?.[0] ?? null;
  }

  private unindex(peer: Peer): void {
    const keys = this.remoteKeys.get(peer);
    if (keys === undefined) return;
    this.remoteKeys.delete(peer);
    if (this.byRemote.get(keys.exact) === peer) this.byRemote.delete(keys.exact);
    const sharing = this.byRemoteHost.get(keys.host) ?? [];
    const at = sharing.indexOf(peer);
    if (at >= 0) sharing.splice(at, 1);
    if (sharing.length === 0) this.byRemoteHost.delete(keys.host);
  }

  /** Checks what a new peer needs before anything changes: id free (MP), VPN addresses. */
  checkNewPeer(config: PeerConfig): void {
    const id = checkPeerId(config.id);
    if (this.mode === 'MP' && this.byId.has(id)) {
      throw new OvpnError('EEXIST', `peer ${id} already exists: delete it first or use another id`, 'id');
    }
    if (this.mode === 'MP' && config.vpnIpv4 === undefined && config.vpnIpv6 === undefined) {
      throw new OvpnError('EINVAL', 'VPN IP must be provided in MP mode: set vpn-ipv4 or vpn-ipv6', 'vpn-ipv4');
    }
    // In P2P mode the new peer replaces the old one, so the old one's addresses are free.
    this.checkSettings(config, this.p2p);
  }

  /** Checks the settings new and existing peers share: keepalive, and VPN addresses no other peer has. */
  checkSettings(config: PeerConfig, self: Peer | null): void {
    checkKeepalive(config);
    for (const address of vpnAddressesOf(config)) {
      const owner = this.router.peerWithVpnAddress(address.family, address.bytes);
      if (owner !== undefined && owner !== self) {
        const message = `${address.field} ${address.text} already belongs to peer ${owner.id}: each peer needs its own VPN address`;
        throw new OvpnError('EEXIST', message, address.field);
      }
    }
  }

  /** Applies the VPN addresses of a config that passed checkSettings. */
  setVpnAddresses(peer: Peer, config: PeerConfig): void {
    if (config.vpnIpv4 === undefined && config.vpnIpv6 === undefined) return;
    if (config.vpnIpv4 !== undefined) peer.vpnIpv4 = config.vpnIpv4;
    if (config.vpnIpv6 !== undefined) peer.vpnIpv6 = config.vpnIpv6;
    const bytes = (address: string | null) => (address === null ? null : parseIp(address)!.bytes);
    this.router.setVpnAddresses(peer, bytes(peer.vpnIpv4), bytes(peer.vpnIpv6));
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
