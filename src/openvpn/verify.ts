/**
 * The peer certificate check OpenVPN does after the handshake, for sockets node:tls does not
 * check by itself (a TLSSocket made with isServer outside a tls.Server): the chain the peer sent
 * must lead to one of our CA certificates, each link signed by the next and within its dates,
 * and with remote-cert-tls the peer's own certificate must be meant for its role.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';

/** Extended key usages by OpenVPN's remote-cert-tls role: what the peer's certificate must allow. */
const EKU: Record<'server' | 'client', { oid: string; name: string }> = {
  server: { oid: '1.3.6.1.5.5.7.3.1', name: 'TLS Web Server Authentication' },
  client: { oid: '1.3.6.1.5.5.7.3.2', name: 'TLS Web Client Authentication' },
};

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function parseCaBundle(pem: string): X509Certificate[] {
  return (pem.match(PEM) ?? []).map((block) => new X509Certificate(block));
}

/**
 * Returns undefined when the chain is good, else why not. `remoteCertTls` (OpenVPN's option of
 * that name) also requires the leaf's extended key usage for that role.
 */
export function verifyPeerChain(
  peer: DetailedPeerCertificate | undefined,
  cas: readonly X509Certificate[],
  remoteCertTls?: 'server' | 'client',
  now = new Date(),
): string | undefined {
  if (peer?.raw === undefined) return 'the peer sent no certificate';
  let cert = new X509Certificate(peer.raw);
  if (remoteCertTls !== undefined && !(cert.keyUsage ?? []).includes(EKU[remoteCertTls].oid))
    return `certificate ${cert.subject.replace(/\n/g, ', ')} lacks the extended key usage ${EKU[remoteCertTls].name} (remote-cert-tls ${remoteCertTls})`;
  let next: DetailedPeerCertificate | undefined = peer.issuerCertificate;
  for (let depth = 0; depth < 10; depth++) {
    if (new Date(cert.validFrom) > now || new Date(cert.validTo) < now)
      return `certificate ${cert.subject.replace(/\n/g, ', ')} is outside its validity dates`;
    const ca = cas.find((c) => cert.checkIssued(c) && cert.verify(c.publicKey));
    if (ca !== undefined) return undefined;
    if (next?.raw === undefined || next.raw.equals(cert.raw)) break;
    const issuer = new X509Certificate(next.raw);
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey) || !issuer.ca)
      return `certificate ${cert.subject.replace(/\n/g, ', ')} is not signed by the next one in the chain`;
    cert = issuer;
    next = next.issuerCertificate;
  }
  return 'the certificate chain does not lead to our CA';
}

/** OpenVPN's verify-x509-name: the whole subject, the CN, or the CN's beginning. */
export interface VerifyX509Name {
  name: string;
  type: 'subject' | 'name' | 'name-prefix';
}

/**
 * Returns undefined when the peer's own certificate matches `rule`, else why not. A subject is
 * written as OpenVPN prints it, `C=KG, ST=NA, CN=Server-1`: the fields in certificate order.
 */
export function checkX509Name(peer: DetailedPeerCertificate | undefined, rule: VerifyX509Name): string | undefined {
  if (peer?.raw === undefined) return 'the peer sent no certificate';
  const cert = new X509Certificate(peer.raw);
  const subject = cert.subject.split('\n').join(', ');
  const cn = cert.subject
    .split('\n')
    .find((field) => field.startsWith('CN='))
    ?.slice(3);
  const ok =
    rule.type === 'subject'
      ? subject === rule.name
      : rule.type === 'name'
        ? cn === rule.name
        : cn?.startsWith(rule.name) === true;
  if (ok) return undefined;
  const what = rule.type === 'subject' ? `subject "${subject}"` : `common name "${cn ?? '(none)'}"`;
  return `${what} does not match verify-x509-name ${rule.name} ${rule.type}`;
}
