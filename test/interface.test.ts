/**
 * The interface as a library (src/device/ovpn-interface.ts) in multi-peer mode: VPN address
 * rules (in process, on the in-memory edges), then what needs the real kernel: routing through
 * the kernel's routing table followed live, and TCP peers. Those cases run `unshare --net node
 * dist/test/helpers/interface-netns.js <scenario>` and assert on the RESULT it reports; the
 * namespace dies with the child, so nothing can leak onto the host. Traffic, float and routing
 * decisions are covered in process by data-path.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OvpnInterface, type PeerConfig } from '../src/device/ovpn-interface.js';
import { MemoryNetwork } from '../src/edge/memory.js';
import { errorOf } from './helpers/errors.js';
import { scenarioInPrivateNetns } from './helpers/private-netns.js';

const HELPER = fileURLToPath(new URL('./helpers/interface-netns.js', import.meta.url));
const NOT_ROOT = process.getuid?.() === 0 ? false : 'needs root to create network namespaces and TUN devices';

const inNetns = (scenario: string): Promise<any> => scenarioInPrivateNetns(HELPER, scenario);

const udpPeer = (id: number, vpnIpv4: string): PeerConfig => ({
  id,
  remoteIpv4: '10.0.0.2',
  remotePort: 40000 + id,
  localPort: 1,
  vpnIpv4,
});

/** Tries every VPN address rule of the upstream module, and the duplicate rule, on a fresh MP interface. */
function validation() {
  const edges = new MemoryNetwork().host('10.0.0.1').edges;
  const iface = OvpnInterface.create({ name: 'ovm0', mode: 'MP', edges });
  const tries: Record<string, PeerConfig> = {
    missing: { id: 1, remoteIpv4: '10.0.0.2', remotePort: 1, localPort: 1 },
    unspecified4: udpPeer(1, '0.0.0.0'),
    loopback4: udpPeer(1, '127.0.0.1'),
    multicast4: udpPeer(1, '224.0.0.1'),
    broadcast4: udpPeer(1, '255.255.255.255'),
    unspecified6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::' },
    loopback6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::1' },
    multicast6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: 'ff02::1' },
    mapped6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::ffff:192.0.2.1' },
    compatible6: { ...udpPeer(1, '5.5.5.2'), vpnIpv6: '::192.0.2.1' },
    notAnAddress: udpPeer(1, '5.5.5'),
  };
  const errors: Record<string, ReturnType<typeof errorOf>> = {};
  for (const [name, config] of Object.entries(tries)) errors[name] = errorOf(() => iface.newPeer(config));
  const peersAfterRefusals = iface.getPeers().length;
  iface.newPeer({ ...udpPeer(1, '5.5.5.2'), vpnIpv6: 'fc00:5::2' });
  errors.duplicate4 = errorOf(() => iface.newPeer(udpPeer(2, '5.5.5.2')));
  errors.duplicate6 = errorOf(() => iface.newPeer({ ...udpPeer(2, '5.5.5.3'), vpnIpv6: 'fc00:5::2' }));
  iface.newPeer(udpPeer(3, '5.5.5.4'));
  errors.setToOthers = errorOf(() => iface.setPeer({ id: 3, vpnIpv4: '5.5.5.2' }));
  // Deleting a peer frees its address.
  iface.delPeer(1);
  errors.reuseAfterDelete = errorOf(() => iface.newPeer(udpPeer(2, '5.5.5.2')));
  iface.destroy();
  return { errors, peersAfterRefusals };
}

test('MP peers: every VPN address rule of the upstream module is enforced, naming the rule and the field', () => {
  const { errors: e, peersAfterRefusals } = validation();
  assert.equal(peersAfterRefusals, 0, 'a refused peer must not be half added');
  assert.deepEqual(e.missing, {
    code: 'EINVAL',
    field: 'vpn-ipv4',
    message: 'VPN IP must be provided in MP mode: set vpn-ipv4 or vpn-ipv6',
  });
  const rules: [string, string, RegExp][] = [
    ['unspecified4', 'vpn-ipv4', /^vpn-ipv4 0\.0\.0\.0 is the unspecified address/],
    ['loopback4', 'vpn-ipv4', /^vpn-ipv4 127\.0\.0\.1 is a loopback address/],
    ['multicast4', 'vpn-ipv4', /^vpn-ipv4 224\.0\.0\.1 is a multicast address/],
    ['broadcast4', 'vpn-ipv4', /^vpn-ipv4 255\.255\.255\.255 is the broadcast address/],
    ['unspecified6', 'vpn-ipv6', /^vpn-ipv6 :: is the unspecified address/],
    ['loopback6', 'vpn-ipv6', /^vpn-ipv6 ::1 is a loopback address/],
    ['multicast6', 'vpn-ipv6', /^vpn-ipv6 ff02::1 is a multicast address/],
    ['mapped6', 'vpn-ipv6', /^vpn-ipv6 ::ffff:192\.0\.2\.1 is an IPv4-mapped IPv6 address/],
    ['compatible6', 'vpn-ipv6', /^vpn-ipv6 ::192\.0\.2\.1 is an IPv4-compatible IPv6 address/],
  ];
  for (const [name, field, message] of rules) {
    assert.equal(e[name]?.code, 'EINVAL', `${name}: ${JSON.stringify(e[name])}`);
    assert.equal(e[name]!.field, field, name);
    assert.match(e[name]!.message, message, name);
  }
  assert.deepEqual(e.notAnAddress, {
    code: 'EINVAL',
    field: 'vpn-ipv4',
    message: 'vpn-ipv4 must be an IPv4 address, got "5.5.5"',
  });
  assert.deepEqual(e.duplicate4, {
    code: 'EEXIST',
    field: 'vpn-ipv4',
    message: 'vpn-ipv4 5.5.5.2 already belongs to peer 1: each peer needs its own VPN address',
  });
  assert.deepEqual(e.duplicate6, {
    code: 'EEXIST',
    field: 'vpn-ipv6',
    message: 'vpn-ipv6 fc00:5::2 already belongs to peer 1: each peer needs its own VPN address',
  });
  assert.equal(e.setToOthers?.code, 'EEXIST');
  assert.equal(e.reuseAfterDelete, null, 'a deleted peer frees its VPN address');
});

test('peers: a remote port must be 1 to 65535; the local port may be 0 (any)', () => {
  const edges = new MemoryNetwork().host('10.0.0.1').edges;
  const iface = OvpnInterface.create({ name: 'ovp0', edges });
  assert.deepEqual(
    errorOf(() => iface.newPeer({ id: 1, localPort: 0, remoteIpv4: '10.0.0.2', remotePort: 0 })),
    { code: 'EINVAL', field: 'remote-port', message: 'remote-port must be a port number from 1 to 65535, got 0' },
  );
  assert.equal(
    errorOf(() => iface.newPeer({ id: 1, localPort: 0, remoteIpv4: '10.0.0.2', remotePort: 1 })),
    null,
  );
  assert.notEqual(iface.getPeer(1).localPort, 0, 'local port 0 picked a free port');
  iface.destroy();
});

test('MP routing: by VPN address, through kernel routes followed live, and through routes attached to a peer', {
  skip: NOT_ROOT,
}, async () => {
  const r = await inNetns('routing');
  assert.deepEqual(r.byVpnAddress, [2, 3, 3]);
  assert.equal(r.unknown, null);
  assert.equal(r.viaPeer2, 2, 'ip route add 11.11.11.11 via 5.5.5.2 dev ovm0');
  assert.equal(r.viaPeer3, 3, 'ip route replace ... via 5.5.5.3');
  assert.equal(r.afterDelete, null, 'ip route del');
  assert.deepEqual(r.attached, [2, null]);
  assert.deepEqual(r.routesOf2, ['10.1.0.0/16']);
  assert.equal(r.attachedAfterDel, null);
  assert.equal(r.badPrefix?.field, 'prefix');
  assert.equal(r.afterPeerDel, null, 'a deleted peer no longer receives');
});

test('TCP peers: framed packets (several per segment, split across segments) reach the peer; close and bad framing delete it with the right reason', {
  skip: NOT_ROOT,
}, async () => {
  const r = await inNetns('tcp');
  assert.deepEqual(r.controls, [{ peerId: 1, data: '3801020304' }]);
  assert.equal(r.attached.remotePortBefore, null, 'a listening peer has no remote until its connection comes');
  assert.equal(r.attached.peer.transport, 'tcp');
  assert.equal(r.attached.peer.vpnRxPackets, 2);
  assert.equal(r.attached.peer.remoteIpv4, '127.0.0.1');
  assert.deepEqual(r.deleted, [
    { peerId: 1, reason: 'TRANSPORT_DISCONNECT' },
    { peerId: 2, reason: 'TRANSPORT_ERROR' },
  ]);
  assert.equal(r.badClosed, true);
  assert.equal(r.peer2AfterStranger.transport, 'tcp', 'a stranger breaking the framing did not end peer 2');
  assert.equal(r.connectRefused?.code, 'ECONNREFUSED');
  assert.match(r.connectRefused.message, /^TCP connect to 127\.0\.0\.1 port 9 failed: connect ECONNREFUSED/);
});

test('an interface name of 15 characters, the most Linux takes, makes a TUN of that name', {
  skip: NOT_ROOT,
}, async () => {
  assert.deepEqual(await inNetns('long-name'), { name: 'ovn15charsname0' });
});
