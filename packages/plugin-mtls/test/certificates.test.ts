import { X509Certificate, createPrivateKey } from "node:crypto";
import { createSecureContext } from "node:tls";
import { expect } from "chai";
import { createCa, createClientCert, createCrl, createServerCert, formatCertificateSummary, inspectCertificate } from "@switchyard/plugin-mtls";

describe("certificate module", () => {
  const ca = createCa({ commonName: "Unit CA", keyBits: 2048 });

  it("issues server and client certificates that chain to the CA, each with its own key", () => {
    const server = createServerCert({ ca, commonName: "svc.test", sans: ["DNS:svc.test", "IP:127.0.0.1", "::1"] });
    const client = createClientCert({ ca, commonName: "alice", sans: ["URI:spiffe://td/ns/a", "email:alice@example.test"], subject: { O: "Org", OU: "Ops" } });
    const caX = new X509Certificate(ca.cert);
    for (const pair of [server, client]) {
      const x = new X509Certificate(pair.cert);
      expect(x.verify(caX.publicKey)).to.equal(true);
      expect(x.checkPrivateKey(createPrivateKey(pair.key))).to.equal(true);
      expect(x.ca).to.equal(false);
    }
    expect(caX.ca).to.equal(true);
    expect(server.key).to.not.equal(client.key);
    const s = inspectCertificate(server.cert);
    expect(s.sans).to.deep.equal({ dns: ["svc.test"], uri: [], email: [], ip: ["127.0.0.1", "0:0:0:0:0:0:0:1"] });
    const c = inspectCertificate(client.cert);
    expect(c.subject).to.equal("OU=Ops,O=Org,CN=alice");
    expect(c.issuer).to.equal("CN=Unit CA");
    expect(c.sans.uri).to.deep.equal(["spiffe://td/ns/a"]);
    expect(c.sans.email).to.deep.equal(["alice@example.test"]);
    expect(c.fingerprint256).to.equal(new X509Certificate(client.cert).fingerprint256.replace(/:/g, "").toLowerCase());
    const text = formatCertificateSummary(c);
    expect(text).to.include("subject:     OU=Ops,O=Org,CN=alice");
    expect(text).to.include("SANs:        URI:spiffe://td/ns/a, email:alice@example.test");
    expect(text).to.match(/SHA-256:\s+([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
  });

  it("takes validity from notBefore and days, and writes a URI only as URI:", () => {
    const from = new Date("2030-01-01T00:00:00Z");
    const c = inspectCertificate(createClientCert({ ca, commonName: "later", notBefore: from, days: 2, key: ca.key }).cert);
    expect(c.validFrom).to.equal("2030-01-01T00:00:00.000Z");
    expect(c.validTo).to.equal("2030-01-03T00:00:00.000Z");
    expect(() => createClientCert({ ca, commonName: "x", sans: ["spiffe://td/x"], key: ca.key })).to.throw(/URI:spiffe/);
  });

  it("writes a CRL OpenSSL loads, listing the revoked serials", () => {
    const leaf = createClientCert({ ca, commonName: "gone", key: ca.key });
    const crl = createCrl({ ca, revoked: [leaf.cert, "0a0b"] });
    expect(crl).to.match(/^-----BEGIN X509 CRL-----\n[A-Za-z0-9+/=\n]+-----END X509 CRL-----\n$/);
    expect(() => createSecureContext({ ca: ca.cert, crl })).to.not.throw();
    const der = Buffer.from(crl.replace(/-----[A-Z0-9 ]+-----|\n/g, ""), "base64");
    expect(der.includes(Buffer.from(new X509Certificate(leaf.cert).serialNumber, "hex"))).to.equal(true);
  });
});
