/**
 * Runs one scenario of a helper script in a private network namespace (`unshare --net node
 * <helper> <scenario>`), so it can create interfaces, addresses and routes without touching the
 * host, and nothing survives it. The helper's last word is a `RESULT <json>` line on stdout;
 * the promise resolves with that value, or rejects with everything the helper printed.
 */
import { spawn } from 'node:child_process';

export function scenarioInPrivateNetns(helper: string, scenario: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--net', process.execPath, helper, scenario], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      // Exit 0 also proves the helper's event loop emptied by itself: nothing was left running.
      if (code !== 0 || line === undefined)
        return reject(new Error(`scenario ${scenario} exited ${code ?? signal}\nstdout: ${out}\nstderr: ${err}`));
      resolve(JSON.parse(line.slice('RESULT '.length)));
    });
  });
}
