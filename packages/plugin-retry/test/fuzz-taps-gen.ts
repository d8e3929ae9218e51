/**
 * Generator and tap plugin for fuzz-taps.test.ts: cases of valid client requests (protocol-http's
 * fuzz generator, no client-side mutations) sent through a proxy with HeadersPlugin, RetryPlugin
 * and a seeded random tap. Each request gets a tap plan (onRequest: answer, edit, throw, delay;
 * onUpstreamResponse per attempt: status, headers, body reads, throw, retry, delay) and the tap
 * records what it really did, so the checker knows which status and body to expect.
 */
import { getHeader, isHttpRequest, isHttpResponse, type HeaderPairs, type HttpUpstreamResponse, type ProxyPlugin, type ProxyRequest, type UpstreamResponse } from "@switchyard/core";
import { sleep } from "@switchyard/test-utils";
import { buildRequest, Rng, type ReqSpec } from "../../protocol-http/dist-test/fuzz-gen.js";

/** which route a request goes to: the catch-all (two targets), a tiny pool, a total deadline */
export type RouteKind = "main" | "tiny" | "slow";
export const ROUTE_PREFIX: Record<RouteKind, string> = { main: "", tiny: "/tiny", slow: "/slow" };

export interface ReqPlan {
  delay: number | undefined; // async tap: await this long first
  action: "none" | "respond" | "throw" | "edit";
  respond?: { status: number; body: Buffer; headers: HeaderPairs };
  method?: string;
  path?: "prefix" | "unknown";
  headers?: boolean;
}

/** observe: a listener in a sync turn (the client still gets every byte); the others consume */
export type BodyRead = "none" | "observe" | "some" | "some-pause" | "some-break" | "all";
export interface ResPlan {
  delay: number | undefined;
  action: "none" | "status" | "throw" | "retry" | "headers";
  status?: number;
  read: BodyRead;
  retry?: { delayMs: number; reason: string; otherTarget?: boolean };
}

export interface TapCase {
  seed: number;
  id: string;
  route: RouteKind;
  reqs: ReqSpec[];
  /** the client bytes, in pieces */
  pieces: Array<{ bytes: Buffer; delay: number }>;
  req: ReqPlan[];
  /** per request, per attempt (index 0 = attempt 1) */
  res: ResPlan[][];
}

/** what the tap did for one attempt (filled in by the plugin) */
export interface ResRecord {
  attempt: number;
  error: boolean;
  retryable: boolean;
  upStatus: number | undefined;
  status: number | undefined;
  /** the tap consumed body bytes before the proxy took the stream back */
  consumed: boolean;
  threw: boolean;
  retried: boolean;
}
export interface ReqRecord {
  threw: boolean;
  responded: { status: number; body: Buffer } | undefined;
  method: string | undefined;
  unknownPath: boolean;
}

export const plans = new Map<string, { req: ReqPlan; res: ResPlan[] }>();
export const reqRecords = new Map<string, ReqRecord>();
export const resRecords = new Map<string, ResRecord[]>();

const DIRECT = [200, 201, 204, 304, 403, 404, 103];
const RES_STATUS = [200, 500, 503, 204, 304, 103, 404];

function reqPlan(r: Rng, q: ReqSpec): ReqPlan {
  const delay = r.chance(0.3) ? r.int(0, 15) : undefined;
  const roll = r.next();
  if (roll < 0.4) return { delay, action: "none" };
  if (roll < 0.6) {
    const headers: HeaderPairs = [["X-Tap", "direct"], ["X-Tap-Id", q.id]];
    if (r.chance(0.2)) headers.push(["Content-Length", "9999"]); // must be ignored (README: respond() frames it)
    return { delay, action: "respond", respond: { status: r.pick(DIRECT), body: r.body(r.pick([0, 3, r.int(0, 2000)])), headers } };
  }
  if (roll < 0.68) return { delay, action: "throw" };
  const p: ReqPlan = { delay, action: "edit", headers: r.chance(0.7) };
  if (!q.upgrade && r.chance(0.35)) {
    const bodied = q.body.length > 0 || q.chunked;
    p.method = bodied ? r.pick(["PUT", "POST", "PATCH"]) : r.pick(["GET", "DELETE", "OPTIONS", "POST", "HEAD"]);
    // a tap turning a request into HEAD or a HEAD into something else is answered 500
    // (protocol-http's hooks.test.ts); this checker does not model that, so no such swap
    if ((p.method === "HEAD") !== (q.method === "HEAD")) delete p.method;
  }
  if (r.chance(0.3)) p.path = r.chance(0.8) ? "prefix" : "unknown";
  return p;
}

function resPlan(r: Rng): ResPlan {
  const delay = r.chance(0.3) ? r.int(0, 15) : undefined;
  const roll = r.next();
  const read: BodyRead = r.chance(0.35) ? r.pick<BodyRead>(["observe", "observe", "some", "some-pause", "some-break", "all"]) : "none";
  if (roll < 0.35) return { delay, action: "none", read };
  if (roll < 0.6) return { delay, action: "status", status: r.pick(RES_STATUS), read };
  if (roll < 0.67) return { delay, action: "throw", read };
  if (roll < 0.82) return { delay, action: "retry", read, retry: { delayMs: r.int(0, 20), reason: "fuzz", ...(r.chance(0.3) ? { otherTarget: r.chance(0.5) } : {}) } };
  return { delay, action: "headers", read };
}

export function generateTapCase(seed: number, routes: readonly RouteKind[] = ["main", "main", "main", "tiny", "slow"]): TapCase {
  const r = new Rng(seed);
  const id = `c${seed.toString(36)}`;
  const route = r.pick(routes);
  const n = r.pick([1, 1, 2, 2, 3]);
  const reqs: ReqSpec[] = [];
  for (let i = 0; i < n; i++) {
    const q = buildRequest(r, id, i, i === n - 1);
    if (route !== "main") q.wire = Buffer.from(q.wire.toString("latin1").replace(/\/fz\//, `${ROUTE_PREFIX[route]}/fz/`), "latin1");
    reqs.push(q);
    if (q.close) break;
  }
  const stream = Buffer.concat(reqs.map((q) => q.wire));
  const pieces = (r.chance(0.4) ? r.split(stream, 6) : [stream]).map((bytes) => ({ bytes, delay: r.chance(0.5) ? 0 : r.int(1, 8) }));
  const req = reqs.map((q) => reqPlan(r, q));
  const res = reqs.map(() => [resPlan(r), resPlan(r), resPlan(r)]);
  return { seed, id, route, reqs, pieces, req, res };
}

const ID = /\/fz\/(c[0-9a-z]+)\/(\d+)\?/;

/** The seeded tap: looks its plan up by the request id in the path and records what it did. */
export const fuzzTap: ProxyPlugin = {
  name: "FuzzTap",
  apply(proxy) {
    proxy.hooks.onRequest.tapPromise("FuzzTap", async (req) => {
      if (!isHttpRequest(req)) return req;
      const m = ID.exec(req.url);
      const id = m ? `${m[1]}.${m[2]}` : undefined;
      const plan = id !== undefined ? plans.get(id) : undefined;
      if (id === undefined || plan === undefined) return req;
      req.meta.fzId = id;
      const p = plan.req;
      const rec: ReqRecord = { threw: false, responded: undefined, method: undefined, unknownPath: false };
      reqRecords.set(id, rec);
      if (p.delay !== undefined) await sleep(p.delay);
      if (p.action === "throw") {
        rec.threw = true;
        throw new Error(`fuzz tap throws (${id})`);
      }
      if (p.action === "respond") {
        const d = p.respond!;
        rec.responded = { status: d.status, body: d.body };
        req.respond(d.status, d.headers, d.body);
      }
      if (p.action === "edit") {
        if (p.headers) {
          req.headers = req.headers.filter(([k]) => k.toLowerCase() !== "x-fuzz");
          req.headers.push(["X-Tap-Req", id]);
        }
        if (p.method !== undefined) req.method = rec.method = p.method;
        if (p.path === "prefix") req.url = `/p${req.url.startsWith("/") ? req.url : req.url.replace(/^https?:\/\/[^/]+/, "")}`;
        if (p.path === "unknown") {
          req.url = "/gone?x=1";
          rec.unknownPath = true;
        }
      }
      return req;
    });
    // a plan without delay or body reads runs as a sync tap: only then does a listener that
    // merely observes the body see the same bytes as the client (an async tap's listener gets
    // chunks before the proxy's own is attached: those are consumed)
    const planOf = (res: UpstreamResponse, req: ProxyRequest | undefined) => {
      const id = req?.meta.fzId as string | undefined;
      const plan = id !== undefined ? plans.get(id) : undefined;
      if (id === undefined || plan === undefined || !isHttpResponse(res)) return undefined;
      const p: ResPlan = plan.res[res.attempt - 1] ?? { delay: undefined, action: "none", read: "none" };
      return { id, p, res, sync: p.delay === undefined && (p.read === "none" || p.read === "observe") };
    };
    proxy.hooks.onUpstreamResponse.tap("FuzzTapSync", (r, req) => {
      const x = planOf(r, req);
      if (x === undefined || !x.sync) return r;
      const { id, p, res } = x;
      const rec = record(id, res);
      if (res.error === undefined) {
        res.headers.push(["X-Tap-Att", String(res.attempt)]);
        // even a sync observer consumes: the async FuzzTap in the same hook makes the whole
        // hook async (tapable), so chunks flow to this listener before the proxy attaches its own
        if (p.read === "observe" && res.body !== null) {
          rec.consumed = true;
          res.body.on("data", () => {});
        }
      }
      return decide(id, p, res, rec);
    });
    proxy.hooks.onUpstreamResponse.tapPromise("FuzzTap", async (r, req) => {
      const x = planOf(r, req);
      if (x === undefined || x.sync) return r;
      const { id, p, res } = x;
      const rec = record(id, res);
      if (res.error === undefined) {
        res.headers.push(["X-Tap-Att", String(res.attempt)]);
        if (p.read !== "none" && res.body !== null) {
          const body = res.body;
          rec.consumed = true;
          if (p.read === "observe") body.on("data", () => {});
          else if (p.read === "some-break") {
            rec.consumed = true;
            // for await + break destroys the stream (what a tap peeking at the start would write)
            for await (const _ of body) break;
          } else {
            // read before deciding: these bytes are the tap's, not the client's
            rec.consumed = true;
            let seen = 0;
            const want = p.read === "all" ? Infinity : 1;
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, 60);
              const done = () => (clearTimeout(t), body.off("data", onData), resolve());
              const onData = (c: Buffer) => ((seen += c.length), seen >= want && done());
              body.on("data", onData);
              body.once("end", done);
              body.once("close", done);
            });
            if (p.read === "some-pause") body.pause();
          }
        }
      }
      if (p.delay !== undefined) await sleep(p.delay);
      return decide(id, p, res, rec);
    });
  },
};

function record(id: string, res: HttpUpstreamResponse): ResRecord {
  const rec: ResRecord = { attempt: res.attempt, error: res.error !== undefined, retryable: res.retryable, upStatus: res.status, status: undefined, consumed: false, threw: false, retried: false };
  const list = resRecords.get(id) ?? [];
  list.push(rec);
  resRecords.set(id, list);
  return rec;
}

function decide(id: string, p: ResPlan, res: HttpUpstreamResponse, rec: ResRecord): HttpUpstreamResponse {
  if (p.action === "throw") {
    rec.threw = true;
    throw new Error(`fuzz tap throws on the response (${id})`);
  }
  if (p.action === "retry" && res.retryable) {
    rec.retried = true;
    res.retry = { ...p.retry! };
    return res;
  }
  if (res.error !== undefined) return res;
  if (p.action === "status") res.status = rec.status = p.status!;
  if (p.action === "headers") {
    res.headers = res.headers.filter(([k]) => k.toLowerCase() !== "x-rand");
    res.headers.push(["X-Tap-Res", "1"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]);
  }
  return res;
}

/** the attempt whose answer a client response carries (X-Tap-Att), if any */
export function recordFor(id: string, headers: Array<[string, string]>): ResRecord | undefined {
  const att = getHeader(headers, "x-tap-att");
  return att === undefined ? undefined : resRecords.get(id)?.find((x) => x.attempt === Number(att));
}

export function forget(c: TapCase): void {
  for (const q of c.reqs) {
    plans.delete(q.id);
    reqRecords.delete(q.id);
    resRecords.delete(q.id);
  }
}
