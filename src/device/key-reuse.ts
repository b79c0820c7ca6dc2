/**
 * Which encryption keys this interface has used. A key installed again starts its packet-ids at
 * 1, so with the same nonce tail every AES-GCM or ChaCha20-Poly1305 nonce repeats: the far end
 * refuses the packets as replays, but the reuse has already happened on the wire. The seed's and
 * the selftests' scripts install one static key for every peer and for rollover on purpose, so
 * a repeat cannot be refused; it is reported instead. Only a digest of the key is kept.
 */
import { createHash } from 'node:crypto';

/** Digests remembered, oldest forgotten first: a long-lived server renegotiates for ever. */
const REMEMBERED = 4096;

export class KeyReuse {
  private readonly users = new Map<string, Set<number>>();

  /** Records that `peerId` encrypts with this key; returns the peers that used it before, if any. */
  use(peerId: number, key: Uint8Array, nonceTail: Uint8Array): number[] {
    const digest = createHash('sha256').update(key).update(nonceTail).digest('base64');
    const before = this.users.get(digest);
    if (before === undefined) {
      if (this.users.size >= REMEMBERED) this.users.delete(this.users.keys().next().value!);
      this.users.set(digest, new Set([peerId]));
      return [];
    }
    const earlier = [...before];
    before.add(peerId);
    return earlier;
  }
}
