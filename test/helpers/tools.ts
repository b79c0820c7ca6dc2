/** Why a test cannot run here (no root, or a command it drives is not installed), or false. */
import { execFileSync } from 'node:child_process';

export function missing(tools: string[], root = true): string | false {
  if (root && process.getuid?.() !== 0) return 'needs root (network namespaces, TUN)';
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool}`;
    }
  }
  return false;
}
