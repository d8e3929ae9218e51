import { once } from "node:events";
import { request } from "node:https";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { createTestCa, type CertPair, type TestCa } from "@switchyard/test-utils";

/** The certificates every mTLS suite uses, built once at test time. */
export interface Pki {
  ca: TestCa;
  /** a CA the listeners do not trust */
  foreign: TestCa;
  server: CertPair;
  /** SAN spiffe://prod.test/tenant-a/web, subject CN=alice,O=Tenant A */
  alice: CertPair;
  /** SAN spiffe://prod.test/tenant-b/api, subject CN=bob,O=Tenant B */
  bob: CertPair;
  /** expired yesterday */
  expired: CertPair;
  /** revoked by `crl` */
  revoked: CertPair;
  /** issued by `foreign` */
  stranger: CertPair;
  /** the CA's CRL revoking `revoked` */
  crl: string;
  /** the CA's CRL revoking nothing */
  emptyCrl: string;
}

let pki: Pki | undefined;
export function buildPki(): Pki {
  if (pki) return pki;
  const ca = createTestCa("mTLS Test CA");
  const foreign = createTestCa("Foreign CA");
  const revoked = ca.issue({ commonName: "mallory", client: true, altNames: ["URI:spiffe://prod.test/tenant-a/old"] });
  pki = {
    ca,
    foreign,
    server: ca.issue({ commonName: "proxy.test", altNames: ["DNS:proxy.test", "IP:127.0.0.1"] }),
    alice: ca.issue({ commonName: "alice", client: true, subject: { O: "Tenant A" }, altNames: ["URI:spiffe://prod.test/tenant-a/web", "DNS:alice.tenant-a.test"] }),
    bob: ca.issue({ commonName: "bob", client: true, subject: { O: "Tenant B" }, altNames: ["URI:spiffe://prod.test/tenant-b/api"] }),
    expired: ca.issue({ commonName: "old", client: true, notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1, altNames: ["URI:spiffe://prod.test/tenant-a/web"] }),
    revoked,
    stranger: foreign.issue({ commonName: "alice", client: true, subject: { O: "Tenant A" }, altNames: ["URI:spiffe://prod.test/tenant-a/web"] }),
    crl: ca.crl([revoked.cert]),
    emptyCrl: ca.crl([]),
  };
  return pki;
}

export interface HttpsAnswer {
  status: number;
  message: string;
  body: string;
}

/** One HTTPS request through the proxy (a fresh connection) with an optional client certificate. */
export function httpsGet(port: number, p: Pki, client: CertPair | undefined, headers: Record<string, string> = {}, path = "/"): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, servername: "proxy.test", ca: p.ca.cert, agent: false, headers, ...(client ? { cert: client.cert, key: client.key } : {}) },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? "", body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("timed out")));
    req.end();
  });
}

/** A TLS connection to the proxy; resolves once the handshake is done (rejects if it fails). */
export async function tlsClient(port: number, p: Pki, client: CertPair | undefined, session?: Buffer): Promise<TLSSocket> {
  const s = tlsConnect({ host: "127.0.0.1", port, servername: "proxy.test", ca: p.ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}), ...(session ? { session } : {}) });
  s.on("error", () => {});
  await Promise.race([once(s, "secureConnect"), once(s, "error").then(([e]) => Promise.reject(e as Error)), once(s, "close").then(() => Promise.reject(new Error("closed")))]);
  return s;
}

/**
 * What a TLS client sees after sending `ping`: the echo, or "" when the proxy closed without
 * answering (TLS 1.3 clients learn of a post-handshake refusal only on the next read).
 */
export async function pingThrough(port: number, p: Pki, client: CertPair | undefined): Promise<string> {
  let s: TLSSocket;
  try {
    s = await tlsClient(port, p, client);
  } catch {
    return "";
  }
  s.write("ping");
  let got = "";
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 3000);
    const done = () => (clearTimeout(t), resolve());
    s.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.length >= 4) done();
    });
    s.once("close", done);
  });
  s.destroy();
  return got;
}
