/**
 * The native AEAD backend: key handles of the shim (native/aead.c) on the OpenSSL inside the
 * node binary, one N-API call per run of packets. Also where an interface's `crypto` choice
 * becomes a backend, since core/ cannot reach the shim itself.
 */
import { type AeadBackend, type AeadKeyPair, type AeadName, type CryptoBackendName, nodeAead } from '../core/aead.js';
import { envInteger } from './env.js';
import { type AeadHandle, type NativeIo, native } from './native.js';

class NativeKeyPair implements AeadKeyPair {
  /** Freed by aeadKeyDelete, or by the handle's finalizer when this object is collected. */
  private readonly handle: AeadHandle;

  constructor(
    private readonly io: NativeIo,
    name: AeadName,
    encrypt: Uint8Array,
    decrypt: Uint8Array,
  ) {
    this.handle = io.aeadKeyNew(name, encrypt, decrypt);
  }

  seal(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number): void {
    this.io.aeadSeal(this.handle, bufs, desc, ivs, count);
  }

  open(bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number, results: Int32Array): void {
    this.io.aeadOpen(this.handle, bufs, desc, ivs, count, results);
  }

  destroy(): void {
    this.io.aeadKeyDelete(this.handle);
  }
}

/**
 * Key handles that hold OpenSSL contexts at once, unless OVPN_AEAD_CONTEXTS says otherwise:
 * contexts with their key schedules are most of what a key costs, so a server with more keys
 * in use than this re-keys contexts for the keys that carry traffic (bench/results/peers.md).
 */
export const AEAD_CONTEXTS_DEFAULT = 1024;

let io: NativeIo | null = null;

/** The shim, its context limit set once from the environment. */
function aeadIo(): NativeIo {
  if (io === null) {
    io = native();
    io.aeadContexts(envInteger('OVPN_AEAD_CONTEXTS', AEAD_CONTEXTS_DEFAULT, 1, 1 << 20));
  }
  return io;
}

export const nativeAead: AeadBackend = {
  name: 'native',
  newKeyPair: (name, encrypt, decrypt) => new NativeKeyPair(aeadIo(), name, encrypt, decrypt),
};

export function aeadBackend(name: CryptoBackendName): AeadBackend {
  return name === 'native' ? nativeAead : nodeAead;
}
