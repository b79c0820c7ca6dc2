/**
 * One remote OpenVPN peer as the data path sees it: its id, where it is, its keys, its VPN
 * addresses, keepalive settings and counters. Mirrors the attributes of the netlink peer object.
 */

import { type DropCounters, newDropCounters } from '../core/drops.js';
import { ENDPOINT_SIZE } from '../core/endpoint.js';
import { KeySlots } from '../core/key-slots.js';

/** Why a peer went away: the values of the netlink del-peer-reason enum. */
export const DelPeerReason = {
  TEARDOWN: 0,
  USERSPACE: 1,
  EXPIRED: 2,
  TRANSPORT_ERROR: 3,
  TRANSPORT_DISCONNECT: 4,
} as const;
export type DelPeerReasonName = keyof typeof DelPeerReason;

/** How a peer's packets travel: datagrams on a shared UDP socket, or its own TCP stream. */
export type Transport = 'udp' | 'tcp';

export interface PeerStats {
  vpnRxBytes: number;
  vpnTxBytes: number;
  vpnRxPackets: number;
  vpnTxPackets: number;
  linkRxBytes: number;
  linkTxBytes: number;
  linkRxPackets: number;
  linkTxPackets: number;
}

export function newPeerStats(): PeerStats {
  return {
    vpnRxBytes: 0,
    vpnTxBytes: 0,
    vpnRxPackets: 0,
    vpnTxPackets: 0,
    linkRxBytes: 0,
    linkTxBytes: 0,
    linkRxPackets: 0,
    linkTxPackets: 0,
  };
}

export class Peer {
  readonly keys = new KeySlots();
  readonly stats = newPeerStats();
  readonly drops: DropCounters = newDropCounters();
  /** Remote transport address in the UDP edge's endpoint-slot layout, local address pinned. */
  readonly endpoint = Buffer.alloc(ENDPOINT_SIZE);
  vpnIpv4: string | null = null;
  vpnIpv6: string | null = null;
  /** Seconds; 0 disables the timer. */
  keepaliveInterval = 0;
  keepaliveTimeout = 0;
  /** Monotonic milliseconds of the last packet sent to / authenticated from this peer. */
  lastSent = 0;
  lastRecv = 0;
  /** Monotonic milliseconds of the last authenticated packet; -1: none yet (lastRecv also restarts the timeout). */
  lastAuthenticated = -1;
  deleted = false;
  /** Set by the receive path when an authenticated packet came from a new remote address. */
  floated = false;

  constructor(
    readonly id: number,
    /** Local port: of the UDP socket carrying this peer, or the TCP port it was accepted on (0 if it connected out). */
    readonly localPort: number,
    readonly transport: Transport = 'udp',
  ) {}
}
