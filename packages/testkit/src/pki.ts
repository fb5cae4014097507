/** A small PKI for tests: an ECDSA P-256 CA that issues server and client certificates. */
// @peculiar/x509 (through tsyringe) needs the Reflect metadata API, loaded before it.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type WebCryptoKey = webcrypto.CryptoKey;
type WebCryptoKeyPair = webcrypto.CryptoKeyPair;

export interface KeyPair {
  /** PEM certificate. */
  certPem: string;
  /** PEM PKCS#8 private key. */
  keyPem: string;
}

export interface ServerCertOptions {
  /** DNS SANs; default ["localhost"]. */
  dnsNames?: string[];
  /** IP SANs; default ["127.0.0.1", "::1"]. */
  ips?: string[];
  commonName?: string;
  validDays?: number;
}

export interface ClientCertOptions {
  /** The user name, as the API server reads it from the subject CN. */
  commonName: string;
  /** Groups, as the API server reads them from the subject O. */
  organizations?: string[];
  validDays?: number;
}

export interface CertificateAuthority extends KeyPair {
  issueServerCert(opts?: ServerCertOptions): Promise<KeyPair>;
  issueClientCert(opts: ClientCertOptions): Promise<KeyPair>;
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString("hex");
}

function escapeDn(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, "\\$1");
}

async function keyPem(key: WebCryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  // Back-date a little so that clock skew between processes does not matter.
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY_MS) };
}

export async function createCertificateAuthority(
  opts: { commonName?: string; validDays?: number } = {},
): Promise<CertificateAuthority> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as WebCryptoKeyPair;
  const name = `CN=${escapeDn(opts.commonName ?? "kproxy-testkit-ca")}`;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    ...validity(opts.validDays ?? 365),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const issue = async (subject: string, exts: x509.Extension[], days: number): Promise<KeyPair> => {
    const leaf = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as WebCryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: caCert.subject,
      ...validity(days),
      publicKey: leaf.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
        await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey),
        ...exts,
      ],
    });
    return { certPem: cert.toString("pem"), keyPem: await keyPem(leaf.privateKey) };
  };
  return {
    certPem: caCert.toString("pem"),
    keyPem: await keyPem(keys.privateKey),
    issueServerCert: async (o = {}) => {
      const dnsNames = o.dnsNames ?? ["localhost"];
      const ips = o.ips ?? ["127.0.0.1", "::1"];
      for (const ip of ips) if (isIP(ip) === 0) throw new TypeError(`not an IP address: ${ip}`);
      const sans = [
        ...dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ];
      if (sans.length === 0) throw new TypeError("a server certificate needs at least one DNS name or IP");
      return issue(
        `CN=${escapeDn(o.commonName ?? dnsNames[0] ?? ips[0]!)}`,
        [
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
            true,
          ),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(sans),
        ],
        o.validDays ?? 365,
      );
    },
    issueClientCert: async (o) => {
      if (!o.commonName) throw new TypeError("a client certificate needs a commonName (the user name)");
      const parts = [
        `CN=${escapeDn(o.commonName)}`,
        ...(o.organizations ?? []).map((g) => `O=${escapeDn(g)}`),
      ];
      return issue(
        parts.join(", "),
        [
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
            true,
          ),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        ],
        o.validDays ?? 365,
      );
    },
  };
}
