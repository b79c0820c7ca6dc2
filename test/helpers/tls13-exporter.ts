/**
 * RFC 8446's keying-material exporter computed from the exporter master secret of a TLS 1.3 key
 * log (the EXPORTER_SECRET line): an implementation independent of OpenSSL's, so a captured
 * session can be replayed in a test. With no context, as OpenVPN asks, the context hash is
 * that of the empty string.
 */
import { createHash, createHmac } from 'node:crypto';

function expandLabel(hash: string, secret: Buffer, label: string, context: Buffer, length: number): Buffer {
  const fullLabel = Buffer.from(`tls13 ${label}`);
  const info = Buffer.concat([
    Buffer.from([length >> 8, length & 0xff, fullLabel.length]),
    fullLabel,
    Buffer.from([context.length]),
    context,
  ]);
  const out: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    previous = createHmac(hash, secret)
      .update(Buffer.concat([previous, info, Buffer.from([i])]))
      .digest();
    out.push(previous);
  }
  return Buffer.concat(out).subarray(0, length);
}

export function tls13Export(exporterSecret: Buffer, label: string, length: number): Buffer {
  const hash = exporterSecret.length === 48 ? 'sha384' : 'sha256';
  const emptyHash = createHash(hash).digest();
  const derived = expandLabel(hash, exporterSecret, label, emptyHash, emptyHash.length);
  return expandLabel(hash, derived, 'exporter', emptyHash, length);
}

/** The exporter master secret from NSS key log lines. */
export function exporterSecretOf(keylog: readonly string[]): Buffer {
  const line = keylog.find((l) => l.startsWith('EXPORTER_SECRET '));
  if (line === undefined) throw new Error('no EXPORTER_SECRET in the key log (not TLS 1.3?)');
  return Buffer.from(line.split(' ')[2]!, 'hex');
}
