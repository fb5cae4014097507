import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority } from "@kproxy/testkit";

export interface TestPki {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A CA and a server certificate for 127.0.0.1 / localhost (testkit's CA), also written as PEM files. */
export async function makePki(): Promise<TestPki> {
  const authority = await createCertificateAuthority({ commonName: "kproxy-test-ca" });
  const server = await authority.issueServerCert({
    commonName: "127.0.0.1",
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const dir = mkdtempSync(join(tmpdir(), "kproxy-pki-"));
  const write = (name: string, pem: string) => {
    writeFileSync(join(dir, name), pem, { mode: 0o600 });
    return join(dir, name);
  };
  return {
    dir,
    caFile: write("ca.crt", authority.certPem),
    certFile: write("server.crt", server.certPem),
    keyFile: write("server.key", server.keyPem),
    ca: Buffer.from(authority.certPem),
    cert: Buffer.from(server.certPem),
    key: Buffer.from(server.keyPem),
  };
}
