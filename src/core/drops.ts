/**
 * Why packets were dropped. Bad input never throws through the event loop: every packet the
 * data path refuses lands in exactly one of these counters.
 */
export interface DropCounters {
  /** Too short or otherwise unparsable. */
  malformed: number;
  /** Key-id matches no key slot (or no primary key to seal with). */
  noKey: number;
  /** Replayed, duplicated, packet-id 0, or older than the replay window. */
  replay: number;
  /** AEAD tag did not verify. */
  auth: number;
  /** Transmit packet-ids used up: the key must be replaced before sending more. */
  keyExhausted: number;
  /** DATA_V1 packets, which are not offloaded. */
  dataV1: number;
  /** DATA_V2 for a peer-id we do not know. */
  unknownPeer: number;
  /** No peer route for the packet's destination, or not an IP packet. */
  noRoute: number;
  /**
   * Our own outer packet to the peer, read back from the TUN: a route sends the peer's remote
   * address into the tunnel, a loop. Dropped before it is sealed again.
   */
  loop: number;
  /**
   * MP: authenticated, but its inner source address belongs to another peer or to none (the
   * module's reverse-path check): a client may only send from its own addresses and the routes
   * behind it.
   */
  badSource: number;
  /** Device or socket refused the write (queue full, invalid packet). */
  io: number;
  /**
   * Dropped by the transmit flow queue (core/flow-queue.ts): bulk that waited too long in a
   * queue that stayed long (CoDel), or beyond its byte or slot limit. The signal that slows
   * a TCP flow down before it fills every queue on the way.
   */
  queue: number;
  /**
   * Control packets not handed up: pushed out of the bounded queue in front of the control
   * plane by newer ones, when they came faster than its rate (device/control-queue.ts).
   */
  control: number;
}

export function newDropCounters(): DropCounters {
  return {
    malformed: 0,
    noKey: 0,
    replay: 0,
    auth: 0,
    keyExhausted: 0,
    dataV1: 0,
    unknownPeer: 0,
    noRoute: 0,
    badSource: 0,
    loop: 0,
    io: 0,
    queue: 0,
    control: 0,
  };
}

export function totalDrops(counters: DropCounters): number {
  let total = 0;
  for (const value of Object.values(counters) as number[]) total += value;
  return total;
}
