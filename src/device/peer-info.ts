/** A peer as the library and peer-get report it: configuration, where it is now, counters. */
import { hasRemote, readEndpoint } from '../core/endpoint.js';
import type { Peer } from '../peer/peer.js';
import type { PeerInfo } from './api.js';

/** `now`: the interface clock's monotonic milliseconds, to turn the last packet's time into an age. */
export function peerInfo(peer: Peer, now: number): PeerInfo {
  // A TCP peer waiting for its connection has no remote yet.
  const remote = hasRemote(peer.endpoint, 0) ? readEndpoint(peer.endpoint, 0) : null;
  const family = remote?.family === 4 ? 'Ipv4' : 'Ipv6';
  const info: PeerInfo = {
    id: peer.id,
    ...(remote === null ? {} : { [`remote${family}`]: remote.address, remotePort: remote.port }),
    localPort: peer.localPort,
    transport: peer.transport,
    keepaliveInterval: peer.keepaliveInterval,
    keepaliveTimeout: peer.keepaliveTimeout,
    ...peer.stats,
    drops: { ...peer.drops },
  };
  if (remote?.local !== undefined) info[`local${family}`] = remote.local;
  if (peer.vpnIpv4 !== null) info.vpnIpv4 = peer.vpnIpv4;
  if (peer.vpnIpv6 !== null) info.vpnIpv6 = peer.vpnIpv6;
  if (peer.lastAuthenticated >= 0) info.lastRxAgeMs = Math.max(0, Math.round(now - peer.lastAuthenticated));
  return info;
}
