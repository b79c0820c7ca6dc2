/**
 * `ovpn-cli genkey [FILE]`: a fresh pre-shared key file in the layout of tests/data64.key and
 * the upstream selftests' (256 random bytes, base64 in 76-column lines; new_key uses the first
 * 72, src/core/key-file.ts). Written with mode 0600 and never over an existing file: a key
 * file replaced by mistake cuts a tunnel, and one readable by others is no secret.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Output } from './output.js';

const KEY_BYTES = 256;
const LINE = 76;

export function newKeyText(): string {
  const b64 = randomBytes(KEY_BYTES).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += LINE) lines.push(b64.slice(i, i + LINE));
  return `${lines.join('\n')}\n`;
}

export async function writeKeyFile(file: string | undefined, out: Output): Promise<void> {
  const text = newKeyText();
  if (file === undefined) {
    out.print(text.trimEnd(), { key: text.replaceAll('\n', '') });
    return;
  }
  try {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw Object.assign(new Error(`${file} exists: genkey never overwrites a key file`), { code });
    throw error;
  }
  out.print(`wrote a new key to ${file}`, { file });
}
