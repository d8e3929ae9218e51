// Type-level checks: compiled by `tsc -b` with the tests; every @ts-expect-error must be an error.
import { Proxy, Stage, silentLogger, type HttpRequestMessage, type ProxyRequest, type Rejection } from "@switchyard/core";

const proxy = new Proxy({ listeners: [], logger: silentLogger });

// onAccept taps return a Rejection or undefined
proxy.hooks.onAccept.tap("ok", () => undefined);
proxy.hooks.onAccept.tap("ok2", (): Rejection => ({ reason: "x" }));
// @ts-expect-error a rejection needs a reason
proxy.hooks.onAccept.tap("bad", () => ({ because: "x" }));

// onRequest is a waterfall over ProxyRequest
proxy.hooks.onRequest.tap({ name: "t", stage: Stage.TRANSFORM }, (req: ProxyRequest) => req);
// @ts-expect-error a waterfall tap must return the request
proxy.hooks.onRequest.tap("bad", () => 42);

// onUpstreamResponse taps see the request as their second argument
proxy.hooks.onUpstreamResponse.tap("t", (res, req) => {
  void req?.id;
  return res;
});

// onClose is sync and observe-only: tapPromise does not exist on a SyncHook
// @ts-expect-error SyncHook has no tapPromise
proxy.hooks.onClose.tapPromise("bad", async () => {});

// hooks are frozen and readonly
// @ts-expect-error hooks cannot be replaced
proxy.hooks.onAccept = proxy.hooks.onAccept;

// HTTP messages keep method/url/headers typed
const fake = {} as HttpRequestMessage;
const m: string = fake.method;
// @ts-expect-error headers are ordered pairs, not a record
const h: Record<string, string> = fake.headers;
void m;
void h;

// Stage constants are numbers usable as tap stages
const s: number = Stage.OBSERVE;
void s;

// a protocol's narrow view of the proxy: what HTTP and TCP use, none of the lifecycle
import type { Connection, ProtocolContext } from "@switchyard/core";
const context: ProtocolContext = proxy;
void context.hooks.onRequest.isUsed();
void ((conn: Connection) => [conn.context.timeoutsFor(conn).idle, conn.context.closing, conn.context.logger]);
// @ts-expect-error the route table is not the protocol's business
context.setRoutes([]);
// @ts-expect-error nor is the proxy's lifecycle
void context.close();

// defineHooks keeps each hook's types from its `new` call
import { defineHooks } from "@switchyard/core";
import { AsyncSeriesBailHook } from "tapable";
const own = defineHooks({ onMailFrom: new AsyncSeriesBailHook<[string], { code: number } | undefined>(["from"]) });
own.onMailFrom.tap("ok", (from: string) => (from ? undefined : { code: 550 }));
// @ts-expect-error a bail tap must return the declared answer type
own.onMailFrom.tap("bad", () => "550");
// @ts-expect-error the set is read-only
own.onMailFrom = new AsyncSeriesBailHook<[string], { code: number } | undefined>(["from"]);
