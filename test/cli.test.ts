/**
 * ovpn-cli's own checks, before it talks to any daemon: inputs it refuses and how it says so.
 * Runs the built CLI as a child process; needs no root and no interface.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/ovpn-cli.js', import.meta.url));

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000 });
}

test('cli: a key file that is not a key file (here endless) is refused after 1 MiB, not read to the end', () => {
  const r = cli('tun9', 'new_key', '1', 'aes', '0', '/dev/zero');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /key file \/dev\/zero is larger than 1048576 bytes: is it the right file\?/);
});

test('cli: --help, -h and help print the usage on stdout and succeed; --version prints the package version', () => {
  for (const flag of ['--help', '-h', 'help']) {
    const r = cli(flag);
    assert.equal(r.status, 0, flag);
    assert.match(r.stdout, /new_peer/, `${flag}: usage on stdout`);
    assert.equal(r.stderr, '', `${flag}: nothing on stderr`);
  }
  const v = cli('--version');
  assert.equal(v.status, 0);
  assert.match(v.stdout, /^ovpn-cli \d+\.\d+\.\d+\n$/);
  const none = cli();
  assert.equal(none.status, 1, 'no command at all is a wrong call');
  assert.match(none.stderr, /new_peer/);
});
