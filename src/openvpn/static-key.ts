/**
 * OpenVPN's static key file (`openvpn --genkey secret`), the key of `tls-auth` and `tls-crypt`:
 * 256 bytes as hex between a header and a footer line. The reading rules are OpenVPN 2.6's
 * (crypto.c, read_key_file): text before the header is ignored (the generated file starts with
 * `#` comments), between header and footer only hex digits and white space may appear, and the
 * footer must follow. OpenVPN also accepts a file holding a single 128-byte key; tls-crypt needs
 * both halves and tls-auth's directions pick one half each, so we ask for all 2048 bits.
 */

export const STATIC_KEY_HEADER = '-----BEGIN OpenVPN Static key V1-----';
export const STATIC_KEY_FOOTER = '-----END OpenVPN Static key V1-----';
/** Two keys of 64 cipher and 64 HMAC bytes each (OpenVPN's struct key2). */
export const STATIC_KEY_SIZE = 256;

/**
 * The 256 key bytes of a static key file's text. `source` names the file (or `inline <tls-auth>`)
 * in errors, which say what was found and what is expected.
 */
export function parseStaticKey(text: string, source: string): Uint8Array {
  const lines = text.split('\n');
  const head = lines.findIndex((line) => line.startsWith(STATIC_KEY_HEADER));
  if (head < 0) throw new Error(`${source}: no "${STATIC_KEY_HEADER}" line: not an OpenVPN static key`);
  const bytes = new Uint8Array(STATIC_KEY_SIZE);
  let count = 0;
  let pending = '';
  for (let i = head + 1; i < lines.length; i++) {
    const line = lines[i]!;
    // As in OpenVPN, a line starting with '-' ends the data; it has to be the footer.
    if (line.startsWith('-')) {
      if (!line.startsWith(STATIC_KEY_FOOTER)) break;
      if (count < STATIC_KEY_SIZE) {
        throw new Error(`${source}: ${count} key bytes: expected ${STATIC_KEY_SIZE} (2048 bits of hex)`);
      }
      return bytes;
    }
    for (const c of line) {
      if (/\s/.test(c)) continue;
      if (!/[0-9a-fA-F]/.test(c)) {
        throw new Error(`${source}:${i + 1}: ${JSON.stringify(c)} in the key: expected hex digits`);
      }
      if (count === STATIC_KEY_SIZE) {
        throw new Error(`${source}:${i + 1}: more than ${STATIC_KEY_SIZE} key bytes before the footer`);
      }
      pending += c;
      if (pending.length === 2) {
        bytes[count++] = Number.parseInt(pending, 16);
        pending = '';
      }
    }
  }
  throw new Error(`${source}: no "${STATIC_KEY_FOOTER}" line after the key`);
}

/** The file text `openvpn --genkey secret` writes for these bytes (16 bytes per line). */
export function formatStaticKey(bytes: Uint8Array): string {
  if (bytes.length !== STATIC_KEY_SIZE) {
    throw new RangeError(`a static key has ${STATIC_KEY_SIZE} bytes, got ${bytes.length}`);
  }
  const hex = Buffer.from(bytes).toString('hex');
  const rows = hex.match(/.{32}/g)!;
  return ['#', '# 2048 bit OpenVPN static key', '#', STATIC_KEY_HEADER, ...rows, STATIC_KEY_FOOTER, ''].join('\n');
}
