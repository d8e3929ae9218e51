import { generateKeyPairSync } from "node:crypto";
import { createCa, createClientCert, createCrl, createServerCert } from "@switchyard/plugin-mtls";

export interface CertPair {
  cert: string;
  key: string;
}

export interface IssueOptions {
  commonName: string;
  /** SANs (`DNS:x`, `IP:1.2.3.4`, `URI:spiffe://…`, `email:…`, or bare names/IPs); default [commonName] */
  altNames?: string[];
  client?: boolean;
  days?: number;
  notBefore?: Date;
  /** extra subject attributes (`{ O: "Tenant A" }`) */
  subject?: Record<string, string>;
}

export interface TestCa extends CertPair {
  /** issues a leaf certificate signed by this CA */
  issue(options: IssueOptions): CertPair;
  /** a CRL of this CA revoking the given certificates (PEM) */
  crl(revoked?: string[]): string;
}

let keyCache: string | undefined;
/** One RSA key reused by every fixture: generating keys is the slow part. */
function sharedKey(): string {
  keyCache ??= generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  return keyCache;
}

/**
 * A throwaway certificate authority built at test time (never committed keys), through the
 * same module as `switchyard certs` (@switchyard/plugin-mtls).
 */
export function createTestCa(commonName = "Switchyard Test CA"): TestCa {
  const key = sharedKey();
  const ca = createCa({ commonName, key, days: 365 });
  return {
    ...ca,
    issue({ commonName: cn, altNames, client = false, days = 30, notBefore, subject }) {
      const o = { ca, commonName: cn, key, days, ...(notBefore ? { notBefore } : {}), ...(subject ? { subject } : {}) };
      const sans = altNames ?? [cn];
      return client ? createClientCert({ ...o, sans }) : createServerCert({ ...o, sans });
    },
    crl(revoked = []) {
      return createCrl({ ca, revoked });
    },
  };
}
