/**
 * Typed loader for the ovpn_io N-API shim (native/ovpn_io.c).
 *
 * The addon is found by walking up from this file to the package root rather
 * than by a fixed relative path, so the same code works from src/ (ts-node,
 * tests run from source), from dist/src/edge/ and from an installed package.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useRangeSum } from '../core/checksum.js';
import { envSwitch } from './env.js';

/** A libuv watcher on an fd, driven by Node's event loop. */
export interface NativePoller {
  /** Closes the watcher (idempotent). The fd may be closed right after. */
  stop(): void;
  /** Let the process exit while this watcher is active (like socket.unref()). */
  unref(): void;
  ref(): void;
}

export interface NativeIo {
  /**
   * With `offloads` (a TUN_F_* mask, 0 included) the device carries a 10-byte virtio_net_hdr in
   * front of every packet read or written (IFF_VNET_HDR) and accepts those offloads
   * (TUNSETOFFLOAD). Throws, leaving no device behind, when the kernel refuses either.
   */
  tunOpen(name: string, offloads?: number): { fd: number; name: string; ifindex: number; usoWrite: boolean };
  linkSet(name: string, opts: { mtu?: number; up?: boolean; txqueuelen?: number }): void;
  linkGet(name: string): { mtu: number; up: boolean; ifindex: number; txqueuelen: number } | null;
  /** Returns packets read (0 = nothing pending). Throws on fd errors. */
  readBatch(fd: number, bufs: Buffer[], offsets: Int32Array, sizes: Int32Array, max: number): number;
  /**
   * Returns packets consumed from the front (written, or dropped with
   * sizes[i] = -errno). Less than count means the fd would block (EAGAIN/ENOBUFS).
   */
  writeBatch(fd: number, bufs: Buffer[], offsets: Int32Array, sizes: Int32Array, count: number): number;
  /** gso/gro in the result: whether the kernel accepted UDP_SEGMENT / UDP_GRO (and they were wanted). */
  udpOpen(
    family: 4 | 6,
    address: string,
    port: number,
    opts?: { gso?: boolean; gro?: boolean; rcvbuf?: number; sndbuf?: number },
  ): { fd: number; port: number; gso: boolean; gro: boolean };
  /** Offload state and counters of a socket opened by udpOpen (diagnostics, tests). */
  udpInfo(fd: number): UdpOffloadInfo;
  udpRecvBatch(fd: number, bufs: Buffer[], offsets: Int32Array, sizes: Int32Array, addrs: Buffer, max: number): number;
  udpSendBatch(
    fd: number,
    bufs: Buffer[],
    offsets: Int32Array,
    sizes: Int32Array,
    addrs: Buffer,
    count: number,
  ): number;
  /** status is 0, or a negative libuv errno (e.g. UV_EBADF on EPOLLERR) after which the watcher is stopped. */
  poll(fd: number, onReadable: (status: number) => void): NativePoller;
  close(fd: number): void;
  /**
   * A key handle (native/aead.c): one EVP_CIPHER_CTX per direction, keyed once, while at most
   * `aeadContexts` handles hold contexts; past that the least recently used one gives its pair
   * up. `name` is an OpenSSL cipher name (aes-256-gcm, chacha20-poly1305, ...).
   */
  aeadKeyNew(name: string, encryptKey: Uint8Array, decryptKey: Uint8Array): AeadHandle;
  /** Frees its contexts (the provider wipes their key schedules) and wipes its key; later use throws. Idempotent. */
  aeadKeyDelete(key: AeadHandle): void;
  /** Sets how many handles may hold contexts at once (this thread); returns [bound now, limit]. */
  aeadContexts(limit?: number): [number, number];
  /** Seals `count` packets described by `desc` (core/aead.ts Desc) in place. Returns count. */
  aeadSeal(key: AeadHandle, bufs: readonly Buffer[], desc: Int32Array, ivs: Buffer, count: number): number;
  /** Opens `count` packets; results[j] = plaintext length, or -1 with the buffer untouched. Returns verified. */
  aeadOpen(
    key: AeadHandle,
    bufs: readonly Buffer[],
    desc: Int32Array,
    ivs: Buffer,
    count: number,
    results: Int32Array,
  ): number;
  /** OpenSSL_version() of the library these calls run on: Node's own. */
  aeadOpenSSL(): string;
  /** The Internet checksum of buf[start, end) added to `acc`, folded (core/checksum.ts sum16). */
  inetSum(buf: Uint8Array, start: number, end: number, acc: number): number;
}

/** Opaque: a napi external the addon alone can read. */
export type AeadHandle = { readonly __aeadHandle: unique symbol };

export interface UdpOffloadInfo {
  /** Sends group same-size datagrams for one endpoint into one UDP_SEGMENT message. */
  gso: boolean;
  /** Receives may return coalesced datagrams, split into slots by the shim. */
  gro: boolean;
  /** Smallest segment size the kernel refused to segment (EINVAL: larger than the path MTU); 0 if none. */
  gsoRefusedSize: number;
  /** Messages sent with UDP_SEGMENT, and ones refused and resent datagram by datagram. */
  gsoSends: number;
  gsoFallbacks: number;
  /** Coalesced datagrams received, and the datagrams they held. */
  groDatagrams: number;
  groSegments: number;
}

/** Error thrown by the addon: .code is the errno name ('EAGAIN', 'EBADFD', ...). */
export interface NativeError extends Error {
  code: string;
  errno: number;
}

export function isNativeError(e: unknown, code?: string): e is NativeError {
  return (
    e instanceof Error &&
    typeof (e as NativeError).code === 'string' &&
    (code === undefined || (e as NativeError).code === code)
  );
}

const ADDON = join('build', 'Release', 'ovpn_io.node');

function locate(): string {
  const override = process.env.OVPN_IO_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  const tried: string[] = [];
  for (;;) {
    const candidate = join(dir, ADDON);
    tried.push(candidate);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(
    `ovpn_io native addon not found (run \`npm install\` or \`npx node-gyp rebuild\`); tried:\n  ${tried.join('\n  ')}`,
  );
}

let cached: NativeIo | undefined;

/** The addon, loaded on first use so importing this module never fails by itself. */
export function native(): NativeIo {
  if (!cached) {
    cached = createRequire(import.meta.url)(locate()) as NativeIo;
    // Segmenting and coalescing sum nearly every byte carried: the shim's sum, once it is here.
    if (envSwitch('OVPN_NATIVE_CHECKSUM', true)) useRangeSum(cached.inetSum);
  }
  return cached;
}
