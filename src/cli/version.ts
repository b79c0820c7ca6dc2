/** The version of this package, from its package.json, found by walking up from the installed files. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ovpn-dco' && pkg.version !== undefined) return pkg.version;
    } catch {
      // not here: look one folder up
    }
  }
  return 'unknown';
}
