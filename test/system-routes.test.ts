/**
 * watchSystemRoutes (src/device/system-routes.ts): the parser of `ip -j route show` output on
 * fixed samples, and the watcher for real inside a throw-away network namespace (each scenario
 * runs test/helpers/routes-netns.js under `unshare --net`, so nothing touches the host's routes
 * and the namespace and its TUN vanish with the child).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatIp } from '../src/core/ip.js';
import { parseRoutes } from '../src/edge/system-routes.js';
import { scenarioInPrivateNetns } from './helpers/private-netns.js';

const HELPER = fileURLToPath(new URL('./helpers/routes-netns.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const NOT_ROOT = 'needs root to create network namespaces and TUN devices';

const inNetns = (scenario: string): Promise<any> => scenarioInPrivateNetns(HELPER, scenario);

const show = (json: string, family: 4 | 6) =>
  parseRoutes(json, family).map(
    (r) => `${r.family} ${formatIp(r.dst)}/${r.prefixLen}${r.gateway === null ? '' : ` via ${formatIp(r.gateway)}`}`,
  );

test('parseRoutes: default, host and prefix routes, gateways; other types and multipath skipped; by metric', () => {
  // Captured from iproute2 6.1 (`ip -j route show dev d0`), plus a v4 route via an IPv6 gateway.
  const v4 = JSON.stringify([
    { dst: 'default', gateway: '10.8.0.5', flags: ['linkdown'] },
    { dst: '10.8.0.0/24', protocol: 'kernel', scope: 'link', prefsrc: '10.8.0.1', flags: ['linkdown'] },
    { dst: '11.11.11.11', gateway: '10.8.0.2', flags: ['linkdown'] },
    { dst: '12.0.0.0/8', scope: 'link', metric: 5, flags: [] },
    { dst: '13.0.0.0/8', via: { family: 'inet6', host: 'fd00::2' }, flags: [] },
    { type: 'local', dst: '15.0.0.1', scope: 'host', flags: [] },
    { type: 'broadcast', dst: '10.8.0.255', scope: 'link', flags: [] },
    { type: 'unicast', dst: '16.0.0.0/8', flags: [] },
    {
      dst: '18.0.0.0/8',
      flags: [],
      nexthops: [
        { gateway: '10.8.0.3', dev: 'd0' },
        { gateway: '10.8.0.4', dev: 'd0' },
      ],
    },
    { dst: 'garbage', flags: [] },
  ]);
  assert.deepEqual(show(v4, 4), [
    '4 0.0.0.0/0 via 10.8.0.5',
    '4 10.8.0.0/24',
    '4 11.11.11.11/32 via 10.8.0.2',
    '4 13.0.0.0/8 via fd00::2',
    '4 16.0.0.0/8',
    '4 12.0.0.0/8',
  ]);
  const v6 = JSON.stringify([
    { dst: '2001:db8::/32', gateway: 'fd00::2', metric: 1024, flags: ['linkdown'], pref: 'medium' },
    { dst: 'fd00::/64', protocol: 'kernel', metric: 256, flags: ['linkdown'], pref: 'medium' },
    { type: 'multicast', dst: 'ff05::/16', metric: 1024, flags: ['linkdown'], pref: 'medium' },
    { dst: 'fd00::9', metric: 1024, flags: [] },
    { dst: 'default', gateway: 'fd00::1', metric: 1024, flags: [] },
    { dst: '10.0.0.0/8', metric: 1, flags: [] },
  ]);
  assert.deepEqual(show(v6, 6), ['6 fd00::/64', '6 2001:db8::/32 via fd00::2', '6 fd00::9/128', '6 ::/0 via fd00::1']);
  assert.deepEqual(parseRoutes('', 4), []);
  assert.deepEqual(parseRoutes('[]\n', 6), []);
  const [first] = parseRoutes(v4, 4);
  assert.deepEqual(first, { family: 4, dst: new Uint8Array(4), prefixLen: 0, gateway: Uint8Array.from([10, 8, 0, 5]) });
  assert.throws(() => parseRoutes('[{', 4), SyntaxError);
});

test('watchSystemRoutes: first dump, then each change via the TUN; close leaves no process', {
  skip: !isRoot && NOT_ROOT,
}, async () => {
  const r = await inNetns('follow');
  assert.deepEqual(
    r.initial,
    [['0.0.0.0/0 via 10.8.0.5', '10.8.0.0/24', 'fd00::/64']],
    'main-table unicast routes of rt0 only',
  );
  assert.deepEqual(r.added, ['0.0.0.0/0 via 10.8.0.5', '10.8.0.0/24', '11.11.11.11/32 via 10.8.0.2', 'fd00::/64']);
  assert.deepEqual(r.added6, [
    '0.0.0.0/0 via 10.8.0.5',
    '10.8.0.0/24',
    '11.11.11.11/32 via 10.8.0.2',
    'fd00::/64',
    '2001:db8::/32 via fd00::2',
  ]);
  assert.deepEqual(r.afterUnrelated, [
    '0.0.0.0/0 via 10.8.0.5',
    '10.8.0.0/24',
    '11.11.11.11/32 via 10.8.0.2',
    '12.0.0.0/8',
    'fd00::/64',
    '2001:db8::/32 via fd00::2',
  ]);
  assert.equal(r.callsForTwoChanges, 1, 'a change on another device brings no callback of its own');
  assert.deepEqual(r.deleted, [
    '0.0.0.0/0 via 10.8.0.5',
    '10.8.0.0/24',
    '12.0.0.0/8',
    'fd00::/64',
    '2001:db8::/32 via fd00::2',
  ]);
  assert.equal(r.childrenWhileOpen, 1, 'only the monitor runs between changes');
  assert.deepEqual(r.leftAfterClose, []);
  assert.deepEqual(r.errors, []);
});

test('watchSystemRoutes: a missing or deleted interface is reported, not thrown', {
  skip: !isRoot && NOT_ROOT,
}, async () => {
  const r = await inNetns('errors');
  assert.equal(r.readyError, 'ip -j route show dev nope0 failed: Cannot find device "nope0"');
  assert.deepEqual(r.missingErrors, ['ip -j route show dev nope0 failed: Cannot find device "nope0"']);
  assert.deepEqual(r.missingSeen, []);
  assert.equal(r.deletedErrors[0], 'ip -j route show dev rt1 failed: Cannot find device "rt1"');
  assert.deepEqual(r.leftAfterClose, []);
});
