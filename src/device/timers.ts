/** The interface's periodic work: keepalive messages and peer expiry. */
import { KeepaliveAction, keepaliveAction } from '../peer/keepalive.js';
import { sendKeepalive } from './data-path.js';
import type { OvpnInterface } from './ovpn-interface.js';

export function runKeepalives(iface: OvpnInterface, now: number): void {
  for (const peer of [...iface.peers.values()]) {
    const action = keepaliveAction(peer, now);
    if (action === KeepaliveAction.Expire) iface.removePeer(peer, 'EXPIRED');
    else if (action === KeepaliveAction.Send) sendKeepalive(iface, peer, now);
  }
}
