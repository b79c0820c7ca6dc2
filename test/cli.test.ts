/**
 * ovpn-cli as a user meets it: help on stdout, one spelling for every parameter, arguments
 * checked before anything is created, interface names checked before any path is built, no
 * interface or daemon left behind by a failed command, `show`, `genkey`, `--json` for every
 * command, the man page and the bash completion. Runs the built CLI as a child process; the
 * tests that create interfaces need root and use a namespace of their own (cl<pid>) and a
 * control directory of their own (OVPN_DCO_RUN_DIR).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../src/cli/commands.js';
import { ago, humanBytes } from '../src/cli/format.js';
import { decodeKeyFile, KEY_FILE_SIZE } from '../src/core/key-file.js';
import { missing } from './helpers/tools.js';

const CLI = fileURLToPath(new URL('../src/cli/ovpn-cli.js', import.meta.url));
const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const KEY = join(ROOT, 'tests', 'data64.key');
const TMP = mkdtempSync(join(tmpdir(), 'ovpn-cli-test-'));
/** Each test's daemons keep their sockets and logs here, so what is left is easy to see. */
const RUN_DIR = join(TMP, 'run');

after(() => rmSync(TMP, { recursive: true, force: true }));

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Result {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, OVPN_DCO_RUN_DIR: RUN_DIR },
  });
}

/** Everything a file system walk finds under a directory (relative paths); [] when it does not exist. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

test('cli: a key file that is not a key file (here endless) is refused after 1 MiB, not read to the end', () => {
  const r = cli('tun9', 'new_key', '1', 'aes', '0', '/dev/zero');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /key-file \/dev\/zero is larger than 1048576 bytes: is it the right file\?/);
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

test('cli: help CMD, CMD --help and <iface> CMD --help print that command on stdout, in the syntax used', () => {
  for (const args of [
    ['help', 'new_peer'],
    ['new_peer', '--help'],
    ['tun8', 'new_peer', '--help'],
    ['help', 'new-peer'],
  ]) {
    const r = cli(...args);
    assert.equal(r.status, 0, args.join(' '));
    assert.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    assert.match(r.stdout, /^ovpn-cli new_peer: /);
    assert.match(r.stdout, /ovpn-cli \[--json\] <iface> new_peer <lport> <peer-id> <raddr> <rport> <vpnaddr>\n/);
    assert.match(r.stdout, /ovpn-cli \[--json\] new_peer <iface> <peer-id> <lport> <raddr> <rport> \[vpnaddr\]\n/);
  }
  const unknown = cli('help', 'frobnicate');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('cli: every command has help, is in the usage, and every parameter is spelled one way (peer-id, not peer_id)', () => {
  const usage = cli('help').stdout;
  let all = usage;
  for (const command of COMMANDS) {
    assert.match(usage, new RegExp(`^  ${command.name} `, 'm'), `${command.name} in the usage`);
    const r = cli('help', command.name);
    assert.equal(r.status, 0, command.name);
    all += r.stdout;
  }
  assert.doesNotMatch(all, /peer_id|key_id|key_dir|key_file|keepalive_|peers_file/, 'one spelling: kebab-case');
  const wrong = cli('tun9', 'del_peer', 'x');
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /peer-id must be a whole number from 0 to 16777215, got "x"/);
  assert.match(wrong.stderr, /Usage: ovpn-cli <iface> del_peer <peer-id>/, 'usage in the syntax used (seed)');
  const upstream = cli('del_peer', 'tun9', 'x');
  assert.match(upstream.stderr, /Usage: ovpn-cli del_peer <iface> <peer-id>/, 'usage in the syntax used (upstream)');
});

test('cli: an interface name alone, or an unknown command, is a short error on stderr, not the whole usage', () => {
  const alone = cli('tun0');
  assert.equal(alone.status, 1);
  assert.equal(alone.stdout, '');
  assert.match(alone.stderr, /no command after "tun0": try ovpn-cli show tun0, or ovpn-cli help/);
  assert.ok(alone.stderr.split('\n').length < 5, alone.stderr);
  const unknown = cli('tun0', 'frobnicate');
  assert.match(unknown.stderr, /unknown command "frobnicate" after interface tun0/);
  assert.ok(unknown.stderr.split('\n').length < 5, unknown.stderr);
});

test('cli: an interface name that is a path creates nothing anywhere, on the client and in paths.ts', async () => {
  const evil = join(TMP, 'x', 'evil');
  const r = cli('new_iface', `../../../..${evil}`);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /interface name must be 1-15 letters, digits, '_', '\.' or '-', got "\.\.\//);
  assert.equal(existsSync(join(TMP, 'x')), false, 'no directory for the evil path');
  assert.deepEqual(filesUnder(RUN_DIR), [], 'nothing in the control directory either');
  // The daemon's and the launcher's side: paths are never built from an unchecked name.
  const paths = await import('../src/control/paths.js');
  for (const name of ['../x', 'a/b', '..', '', 'a'.repeat(16)]) {
    assert.throws(() => paths.logPath(name), /interface name must be/, `logPath(${JSON.stringify(name)})`);
    assert.throws(() => paths.socketPath(name), /interface name must be/, `socketPath(${JSON.stringify(name)})`);
  }
});

test('cli: key-file errors say what the file must hold and how to make one, and are not EIO', () => {
  const bad = join(TMP, 'bad.key');
  writeFileSync(bad, 'hello\n');
  for (const args of [
    ['tun9', 'new_key', '1', 'aes', '0', bad],
    ['new_key', 'tun9', '1', '1', '0', 'aes', '0', join(TMP, 'absent.key')],
  ]) {
    const r = cli(...args);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /key-file /);
    assert.match(r.stderr, /base64 of at least 72 bytes \(two 32-byte keys and an 8-byte nonce tail\)/);
    assert.match(r.stderr, /ovpn-cli genkey FILE/);
    assert.doesNotMatch(r.stderr, /EIO/);
  }
  const json = cli('--json', 'tun9', 'new_key', '1', 'aes', '0', bad);
  assert.equal(JSON.parse(json.stdout).error.code, 'EINVAL');
  assert.equal(JSON.parse(json.stdout).error.field, 'key-file');
});

test('cli: genkey writes a fresh 0600 key file that new_key reads, never over an existing one; without FILE prints one', () => {
  const file = join(TMP, 'fresh.key');
  const r = cli('genkey', file);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^([A-Za-z0-9+/]{76}\n){4}[A-Za-z0-9+/=]{40}\n$/, 'the layout of tests/data64.key');
  assert.ok(decodeKeyFile(text).length >= KEY_FILE_SIZE);
  assert.notEqual(text, readFileSync(KEY, 'utf8'));
  const again = cli('genkey', file);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /exists: genkey never overwrites a key file \(EEXIST\)/);
  assert.equal(readFileSync(file, 'utf8'), text, 'the first key is untouched');
  const printed = cli('genkey');
  assert.equal(printed.status, 0);
  assert.notEqual(printed.stdout, text, 'a fresh key each time');
  assert.equal(decodeKeyFile(printed.stdout).length, 256);
  assert.equal(Buffer.from(JSON.parse(cli('--json', 'genkey').stdout).key, 'base64').length, 256);
});

test('cli: show formats transfer in binary units and the last packet as an age', () => {
  assert.equal(humanBytes(512), '512 B');
  assert.equal(humanBytes(1536), '1.50 KiB');
  assert.equal(humanBytes(3 * 1024 * 1024), '3.00 MiB');
  assert.equal(humanBytes(5 * 1024 ** 3), '5.00 GiB');
  assert.equal(ago(400), 'less than a second ago');
  assert.equal(ago(12_300), '12 seconds ago');
  assert.equal(ago(65_000), '1 minute, 5 seconds ago');
  assert.equal(ago(3_600_000 + 120_000), '1 hour, 2 minutes ago');
});

test('cli: the man page renders and names every command; package.json installs it', () => {
  const page = readFileSync(join(ROOT, 'man', 'ovpn-cli.1'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.man, ['./man/ovpn-cli.1']);
  assert.ok(pkg.files.includes('man') && pkg.files.includes('completion'), 'shipped by npm pack');
  assert.equal(pkg.scripts.prepack, 'npm run build', 'npm pack ships dist/');
  const rendered = missing(['man'], false)
    ? page
    : execFileSync('man', ['-l', join(ROOT, 'man', 'ovpn-cli.1')], {
        encoding: 'utf8',
        env: { ...process.env, MANWIDTH: '100', MAN_KEEP_FORMATTING: '' },
      });
  assert.match(rendered, /OVPN-CLI\(1\)|\.TH OVPN-CLI 1/);
  for (const command of COMMANDS) assert.ok(rendered.includes(command.name), `${command.name} in the man page`);
});

test('cli: the bash completion completes the commands, and knows all of them', {
  skip: missing(['bash'], false),
}, () => {
  const script = join(ROOT, 'completion', 'ovpn-cli.bash');
  const complete = (words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `source "$0"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ovpn_cli; printf '%s\\n' "\${COMPREPLY[@]}"`,
        script,
      ],
      { encoding: 'utf8', env: { ...process.env, OVPN_DCO_RUN_DIR: RUN_DIR } },
    )
      .split('\n')
      .filter(Boolean);
  assert.deepEqual(complete(['ovpn-cli', 'new_']), ['new_iface', 'new_peer', 'new_multi_peer', 'new_key']);
  assert.deepEqual(complete(['ovpn-cli', '--json', 'tun0', 'route']), ['route_add', 'route_del', 'route_get']);
  assert.deepEqual(complete(['ovpn-cli', 'new_iface', 'tun0', '']), ['P2P', 'MP']);
  const listed = /_ovpn_cli_commands="([^"]*)"/.exec(readFileSync(script, 'utf8'))![1]!.split(' ');
  assert.deepEqual(listed.sort(), [...COMMANDS.map((c) => c.name), 'help'].sort(), 'the completion list is the table');
});

describe('cli: with interfaces, in a namespace of its own', { skip: missing(['ip']) }, () => {
  const ns = `cl${process.pid}`;
  const inNs = (...args: string[]): Result =>
    spawnSync('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, OVPN_DCO_RUN_DIR: RUN_DIR },
    });
  const json = (...args: string[]) => {
    const r = inNs('--json', ...args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const controlDir = () => join(RUN_DIR, `netns-${statSync(`/run/netns/${ns}`).ino}`);
  const pids = () => execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).trim();

  /** Nothing of `ifname` is left: no link, no control socket, no empty log, no process in the namespace. */
  function assertGone(ifname: string, what: string): void {
    assert.notEqual(spawnSync('ip', ['-n', ns, 'link', 'show', ifname]).status, 0, `${what}: ${ifname} left behind`);
    const files = filesUnder(controlDir());
    assert.ok(!files.includes(`${ifname}.sock`), `${what}: control socket left behind`);
    const log = join(controlDir(), `${ifname}.log`);
    assert.ok(!existsSync(log) || statSync(log).size > 0, `${what}: an empty ${ifname}.log left behind`);
    const daemons = pids()
      .split('\n')
      .filter(Boolean)
      .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))
      .filter((argv) => argv[argv.indexOf('--ifname') + 1] === ifname);
    assert.deepEqual(daemons, [], `${what}: its daemon left in the namespace`);
  }

  before(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });
  after(() => {
    for (const name of filesUnder(controlDir()).filter((f) => f.endsWith('.sock')))
      inNs('del_iface', name.slice(0, -'.sock'.length));
    for (const pid of pids().split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    execFileSync('ip', ['netns', 'del', ns]);
  });

  test('a command that fails leaves no interface, daemon or empty log behind', () => {
    const peers = join(TMP, 'peers.txt');
    writeFileSync(peers, '1 127.0.0.1 1 5.5.5.2\n2 127.0.0.1 x 5.5.5.3\n');
    const failing: [string[], number][] = [
      [['tun8', 'new_peer', '--help'], 0],
      [['tun8', 'new_peer', 'x', '1', '127.0.0.1', '1', '5.5.5.2'], 1],
      [['tun8', 'new_peer', '1', '1', '127.0.0.1', '1', '5.5.5.x'], 1],
      [['tun8', 'new_peer', '1', '1', '127.0.0.1', '1'], 1],
      [['tun8', 'new_multi_peer', '1', '/nonexistent'], 1],
      [['tun8', 'new_multi_peer', '1', peers], 1],
      [['tun8', 'listen', '1', '/nonexistent'], 1],
      // The daemon refuses this one, after the interface was created: it must go again.
      [['tun8', 'new_peer', '1', '1', '127.0.0.1', '1', '::1'], 2],
      // Nobody listens on port 9: the TCP connect is refused after the interface was created.
      [['tun8', 'connect', '1', '127.0.0.1', '9', '5.5.5.1'], 2],
    ];
    for (const [args, status] of failing) {
      const r = inNs(...args);
      assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
      assertGone('tun8', args.join(' '));
    }
    // The name exists as another link: the daemon fails before it writes a word to its log.
    const lo = inNs('new_iface', 'lo');
    assert.equal(lo.status, 2, lo.stderr);
    assert.deepEqual(
      filesUnder(controlDir()).filter((f) => f.startsWith('lo.')),
      [],
      'no lo.log, no lo.sock',
    );
    assert.equal(pids(), '', 'no daemon left for lo');
    const peersNote = inNs('tun8', 'new_multi_peer', '1', peers);
    assert.match(peersNote.stderr, /peers\.txt line 2: rport must be a whole number from 0 to 65535, got "x"/);
  });

  test('show, get_peer, iface_get, routes and --json for every command, on two tunnels over loopback', async () => {
    const key = join(TMP, 'show.key');
    assert.equal(inNs('genkey', key).status, 0);
    const steps = [
      ['tun0', 'new_peer', '1001', '1', '127.0.0.1', '1002', '5.5.5.2'],
      ['tun1', 'new_peer', '1002', '1', '127.0.0.1', '1001', '5.5.5.1'],
      ['tun0', 'new_key', '1', 'aes', '0', key],
      ['tun1', 'new_key', '1', 'aes', '1', key],
      ['tun0', 'set_peer', '1', '1', '30'],
      ['tun1', 'set_peer', '1', '1', '30'],
      ['tun2', 'new_multi_peer', '2000', join(TMP, 'show-peers.txt')],
      ['tun2', 'route-add', '7', '10.1.0.0/16'],
    ];
    writeFileSync(join(TMP, 'show-peers.txt'), '# one MP peer\n7 127.0.0.1 2001 5.5.6.2\n');
    for (const args of steps) assert.deepEqual(json(...args), { ok: true }, `--json ${args.join(' ')}`);
    assert.deepEqual(json('route-get', 'tun2', '7'), { 'peer-id': 7, routes: ['10.1.0.0/16'] });
    // A second key in tun1's secondary slot, swapped in and back: the primary still matches tun0's.
    assert.deepEqual(json('new_key', 'tun1', '1', '2', '5', 'chachapoly', '1', key), { ok: true });
    assert.deepEqual(json('tun1', 'swap_keys', '1'), { ok: true });
    assert.deepEqual(json('swap_keys', 'tun1', '1'), { ok: true });
    // Keepalives go every second: wait (bounded) for one to arrive at each end.
    const deadline = Date.now() + 10_000;
    let all = json('show');
    while (
      all.some((i: any) => i.peers.some((p: any) => p['last-rx-age-ms'] === undefined && i.interface.mode === 'P2P'))
    ) {
      assert.ok(Date.now() < deadline, `no keepalive arrived in 10 s: ${JSON.stringify(all)}`);
      await new Promise((done) => setTimeout(done, 200));
      all = json('show');
    }
    assert.deepEqual(
      all.map((i: any) => [i.interface.ifname, i.interface.mode, i.peers.length]),
      [
        ['tun0', 'P2P', 1],
        ['tun1', 'P2P', 1],
        ['tun2', 'MP', 1],
      ],
    );
    const tun1 = json('show', 'tun1');
    assert.equal(tun1.interface.ifname, 'tun1', 'show IFACE --json: one object');
    const peer = tun1.peers[0];
    assert.equal(peer['remote-ipv4'], '127.0.0.1');
    assert.deepEqual(peer.keys.primary, { 'peer-id': 1, slot: 'primary', 'key-id': 0, 'cipher-alg': 'AES-256-GCM' });
    assert.deepEqual(peer.keys.secondary, {
      'peer-id': 1,
      slot: 'secondary',
      'key-id': 5,
      'cipher-alg': 'CHACHA20-POLY1305',
    });
    assert.ok(peer['last-rx-age-ms'] >= 0 && peer['last-rx-age-ms'] < 10_000, String(peer['last-rx-age-ms']));
    assert.ok(peer['link-rx-bytes'] > 0);

    const text = inNs('show');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^interface: tun0\n {2}mode: P2P, ifindex \d+, mtu 1428, daemon pid \d+\n/m);
    assert.match(text.stdout, /^ {2}endpoint: 127\.0\.0\.1:1001 \(udp, local 127\.0\.0\.1:1002\)$/m);
    assert.match(text.stdout, /^ {2}vpn addresses: 5\.5\.5\.1$/m);
    assert.match(text.stdout, /keys: primary key-id 0, AES-256-GCM; secondary key-id 5, CHACHA20-POLY1305/);
    assert.match(text.stdout, /^ {2}latest packet: (less than a second|\d+ seconds?) ago$/m);
    assert.match(text.stdout, /^ {2}latest packet: never$/m, 'the MP peer never sent anything');
    assert.match(text.stdout, /^ {2}keepalive: every 1 s, timeout 30 s$/m);
    assert.match(text.stdout, /^ {2}transfer: 0 B received, 0 B sent \(link: \d+ B received, \d+ B sent\)$/m);
    assert.match(text.stdout, /^ {2}routes: 10\.1\.0\.0\/16$/m);
    assert.match(text.stdout, /^ {2}drops: (none|[a-z-]+ \d+(, [a-z-]+ \d+)*)$/m);

    const info = json('iface-get', 'tun2');
    assert.equal(info.mode, 'MP');
    assert.equal(info.peers, 1);
    assert.match(inNs('tun2', 'iface_get').stdout, /^drops: malformed 0, /m, 'counters readable without --json');
    assert.match(inNs('tun0', 'get_peer', '1').stdout, /\tDrops: .*\n\tLatest packet: /);
    assert.deepEqual(json('tun2', 'route_del', '7', '10.1.0.0/16'), { ok: true });
    assert.deepEqual(json('tun2', 'del_key', '7'), { ok: true });
    // Without a slot the seed's del_key deletes the primary key, the upstream one both.
    assert.deepEqual(json('tun1', 'del_key', '1'), { ok: true });
    assert.deepEqual(
      Object.values(json('show', 'tun1').peers[0].keys).map((k: any) => k?.['key-id'] ?? null),
      [null, 5],
    );
    assert.deepEqual(json('del_key', 'tun1', '1'), { ok: true });
    assert.deepEqual(json('show', 'tun1').peers[0].keys, { primary: null, secondary: null });
    const failed = inNs('--json', 'tun2', 'get_peer', '99');
    assert.equal(failed.status, 2);
    assert.equal(JSON.parse(failed.stdout).error.code, 'ENOENT');
    for (const name of ['tun0', 'tun1', 'tun2']) {
      assert.equal(json('del_iface', name).ifname, name);
      assertGone(name, `del_iface ${name}`);
    }
    const none = inNs('show');
    assert.equal(none.status, 0);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /no ovpn interface in this network namespace/);
    assert.deepEqual(json('show'), []);
  });
});
