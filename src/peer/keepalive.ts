/**
 * Keepalive decisions, free of timers so they can be tested with any clock: a peer is sent the
 * keepalive message after `interval` seconds without sending, and is expired after `timeout`
 * seconds without an authenticated packet from it. Each timer is off when its value is 0.
 */
import type { Peer } from './peer.js';

export const enum KeepaliveAction {
  None = 0,
  Send = 1,
  Expire = 2,
}

export function keepaliveAction(peer: Peer, nowMs: number): KeepaliveAction {
  if (peer.keepaliveTimeout > 0 && nowMs - peer.lastRecv >= peer.keepaliveTimeout * 1000) return KeepaliveAction.Expire;
  if (peer.keepaliveInterval > 0 && nowMs - peer.lastSent >= peer.keepaliveInterval * 1000) return KeepaliveAction.Send;
  return KeepaliveAction.None;
}
