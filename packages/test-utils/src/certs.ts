import forge from "node-forge";

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCa extends CertPair {
  /** issues a leaf certificate signed by this CA */
  issue(options: { commonName: string; altNames?: string[]; client?: boolean; days?: number }): CertPair;
}

let keyCache: forge.pki.rsa.KeyPair | undefined;
/** One RSA key reused by every fixture: generating keys is the slow part. */
function sharedKey(): forge.pki.rsa.KeyPair {
  keyCache ??= forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  return keyCache;
}

let serial = 1;
function nextSerial(): string {
  return (serial++).toString(16).padStart(2, "0") + Date.now().toString(16);
}

/** A throwaway certificate authority built at test time (never committed keys). */
export function createTestCa(commonName = "Switchyard Test CA"): TestCa {
  const keys = sharedKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = nextSerial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  const attrs = [{ name: "commonName", value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: "basicConstraints", cA: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(cert);
  const keyPem = forge.pki.privateKeyToPem(keys.privateKey);
  return {
    cert: caPem,
    key: keyPem,
    issue({ commonName: cn, altNames = [cn], client = false, days = 30 }) {
      const leaf = forge.pki.createCertificate();
      leaf.publicKey = keys.publicKey;
      leaf.serialNumber = nextSerial();
      leaf.validity.notBefore = new Date(Date.now() - 60_000);
      leaf.validity.notAfter = new Date(Date.now() + days * 86_400_000);
      leaf.setSubject([{ name: "commonName", value: cn }]);
      leaf.setIssuer(cert.subject.attributes);
      leaf.setExtensions([
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
        { name: "extKeyUsage", serverAuth: !client, clientAuth: client },
        {
          name: "subjectAltName",
          altNames: altNames.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })),
        },
      ]);
      leaf.sign(keys.privateKey, forge.md.sha256.create());
      return { cert: forge.pki.certificateToPem(leaf), key: keyPem };
    },
  };
}
