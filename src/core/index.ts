/** The OS-free data-channel core: framing, ciphers, packet-ids, replay window, key slots. */

export * from './aead.js';
export * from './batch.js';
export * from './cipher.js';
export * from './crypto-batch.js';
export * from './drops.js';
export * from './key-context.js';
export * from './key-file.js';
export * from './key-slots.js';
export * from './packet-id.js';
export * from './replay.js';
export * from './wire.js';
