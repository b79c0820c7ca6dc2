/** The interface's periodic work: keepalive messages and peer expiry, on the interface's clock. */
import type { Clock, Timer } from '../edge/edges.js';
import { KeepaliveAction, keepaliveAction } from '../peer/keepalive.js';
import type { Peer } from '../peer/peer.js';

/** How often keepalive deadlines are checked: well below the one-second unit of the settings. */
const KEEPALIVE_TICK_MS = 250;

export interface KeepaliveActions {
  peers(): Iterable<Peer>;
  send(peer: Peer): void;
  expire(peer: Peer): void;
}

export function startKeepalives(clock: Clock, actions: KeepaliveActions): Timer {
  return clock.every(KEEPALIVE_TICK_MS, () => {
    const now = clock.now();
    // A copy: expiring a peer removes it from the table being walked.
    for (const peer of [...actions.peers()]) {
      const action = keepaliveAction(peer, now);
      if (action === KeepaliveAction.Expire) actions.expire(peer);
      else if (action === KeepaliveAction.Send) actions.send(peer);
    }
  });
}
