import { createCertificateAuthority } from "@kproxy/testkit";

export interface TestCert {
  /** PEM certificate of the server, for 127.0.0.1 and localhost. */
  cert: string;
  /** PEM PKCS#8 key of the server. */
  key: string;
  /** PEM certificate of the CA that issued it: a client that trusts this verifies the server. */
  ca: string;
}

/** A server certificate for 127.0.0.1/localhost issued by a fresh CA of @kproxy/testkit. */
export async function serverCert(): Promise<TestCert> {
  const ca = await createCertificateAuthority();
  const server = await ca.issueServerCert({ dnsNames: ["localhost"], ips: ["127.0.0.1"] });
  return { cert: server.certPem, key: server.keyPem, ca: ca.certPem };
}
