/**
 * What the interface tells its operator when something costs packets or safety but not the
 * interface: each kind once (a TUN that stays down would fail every batch), in words that say
 * what happened and what to do.
 */
import { readEndpoint } from '../core/endpoint.js';
import { errorCode } from '../edge/edges.js';
import type { Peer } from '../peer/peer.js';

/** Kinds of io failure remembered; past this the memory starts over (peers come and go). */
const IO_KINDS_REMEMBERED = 256;

export class Warnings {
  private readonly loops = new WeakSet<Peer>();
  private readonly ioKinds = new Set<string>();

  constructor(
    private readonly ifname: () => string,
    private readonly warn: (message: string) => void,
  ) {}

  /** A packet for `peer` was its own outer packet, routed back into the TUN. */
  loop(peer: Peer): void {
    if (this.loops.has(peer)) return;
    this.loops.add(peer);
    const remote = readEndpoint(peer.endpoint, 0);
    this.warn(
      `routing loop: packets to peer ${peer.id}'s own address ${remote.address} port ${remote.port} are routed ` +
        `into ${this.ifname()}; dropped (drops.loop). Route that address outside the tunnel`,
    );
  }

  /** A device or socket refused a batch. */
  ioError(what: string, error: unknown): void {
    const kind = `${what}: ${errorCode(error) ?? (error as Error).message}`;
    if (this.ioKinds.has(kind)) return;
    if (this.ioKinds.size >= IO_KINDS_REMEMBERED) this.ioKinds.clear();
    this.ioKinds.add(kind);
    this.warn(`${what} failed (${(error as Error).message}): packets dropped, counted as io drops`);
  }

  /** An encryption key was installed again: its nonces repeat. */
  keyReused(peerId: number, keyId: number, earlierPeers: number[]): void {
    const who = earlierPeers.map((id) => `peer ${id}`).join(', ');
    this.warn(
      `key-id ${keyId} of peer ${peerId} encrypts with a key already used by ${who}: its nonces repeat. ` +
        'Give every session a fresh key (head -c 72 /dev/urandom | base64 > new.key), or use a TLS control plane',
    );
  }
}
