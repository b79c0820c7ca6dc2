/**
 * Throw-away certificates made with the openssl CLI for the control-plane tests: a CA, a server
 * certificate (serverAuth, what `remote-cert-tls server` checks) and a client certificate
 * (clientAuth), and optionally a second CA's client for the refusal cases. EC P-256 keys: fast.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Files, for openvpn's command line. */
  files: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string };
  remove(): void;
}

const openssl = (dir: string, ...args: string[]) =>
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

function newKey(dir: string, name: string): void {
  openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

function issue(dir: string, name: string, cn: string, usage: 'serverAuth' | 'clientAuth'): void {
  newKey(dir, name);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
  writeFileSync(
    join(dir, `${name}.ext`),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=${usage}\n`,
  );
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-set_serial',
    `0x${Buffer.from(name).toString('hex')}`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-pki-'));
  newKey(dir, 'ca');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=ovpn-dco test CA',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    'ca.crt',
  );
  issue(dir, 'server', 'server', 'serverAuth');
  issue(dir, 'client', 'client1', 'clientAuth');
  const files = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
  const read = (path: string) => readFileSync(path, 'utf8');
  return {
    dir,
    ca: read(files.ca),
    serverCert: read(files.serverCert),
    serverKey: read(files.serverKey),
    clientCert: read(files.clientCert),
    clientKey: read(files.clientKey),
    files,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
