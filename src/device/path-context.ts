/**
 * What the data path sees of the rest of the interface: the peer table, the links, and a host
 * to tell what happened. Narrow on purpose, so transmit and receive can be read (and faked) on
 * their own.
 */

import type { Peer } from '../peer/peer.js';
import type { ControlQueue } from './control-queue.js';
import type { Link } from './links.js';
import type { TcpLink } from './tcp-link.js';
import type { UdpPort } from './udp-port.js';

export interface PeerLookup {
  get(id: number): Peer | undefined;
  /** The peer a packet read from the TUN goes to, or null. */
  route(buf: Buffer, offset: number, size: number): Peer | null;
  /** Whether a packet that `peer` sent may carry its inner source address (MP reverse-path check). */
  sourceAllowed(peer: Peer, buf: Buffer, offset: number, size: number): boolean;
  /** The UDP peer at exactly the remote address and port in endpoint slot i. */
  atRemote(localPort: number, endpoints: Buffer, i: number): Peer | null;
  /** The UDP peer at the address in endpoint slot i, for control packets. */
  atRemoteAddress(localPort: number, endpoints: Buffer, i: number): Peer | null;
}

export interface LinkLookup {
  linkOf(peer: Peer): Link | undefined;
  udpPorts(): Iterable<UdpPort>;
}

export interface DataPathHost {
  readonly closed: boolean;
  /** An authenticated packet came from the peer's new remote address. */
  floated(peer: Peer): void;
  /** Packets that are not data, for the control plane, untouched (the queue copies them). */
  readonly controlPackets: Pick<ControlQueue, 'push' | 'pushFromSlot'>;
  /** A packet for `peer` was its own outer packet, routed back into the TUN. */
  looped(peer: Peer): void;
  /**
   * A device or socket refused a whole batch (the TUN is down, a path's interface vanished):
   * the packets are counted as io drops by the caller; this tells the operator.
   */
  ioError(what: string, error: unknown): void;
  /** `count` packets arrived on a TCP connection no peer has (counted, summarised in the log). */
  unassignedStream(count: number): void;
  /** A TCP connection proved to be `peer`'s: its packets authenticate with the peer's keys. */
  streamProven(peer: Peer, link: TcpLink): void;
  /** The TUN was deleted underneath us. */
  tunGone(): void;
}
