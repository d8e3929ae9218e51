import { randomUUID } from "node:crypto";
import {
  ConfigError,
  getHeader,
  isHttpRequest,
  isHttpResponse,
  setHeader,
  Stage,
  type Proxy,
  type ProxyPlugin,
} from "@switchyard/core";

const PLUGIN_NAME = "RequestIdPlugin";

export interface RequestIdOptions {
  /** header carrying the id (default "X-Request-Id") */
  header?: string;
  /** keep an id the client (or a proxy in front) already sent, when it looks sane (default true) */
  trustIncoming?: boolean;
  /** makes a new id (default: crypto.randomUUID) */
  generate?: () => string;
  /** echo the id on responses to the client (default true) */
  onResponse?: boolean;
}

/** Visible ASCII only, at most 200 characters: anything else is replaced, not forwarded. */
const SANE_ID = /^[\x21-\x7e]{1,200}$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Gives every HTTP request an id in `X-Request-Id` (keeping a sane incoming one), sends it
 * upstream, and echoes it on the response so clients and backends can correlate logs.
 *
 * Taps `onRequest` and `onUpstreamResponse` at `Stage.TRANSFORM`: header cleaning plugins
 * (which run at `Stage.NORMALIZE`) have already run, observers (`Stage.OBSERVE`) see the id.
 */
export class RequestIdPlugin implements ProxyPlugin {
  readonly name = PLUGIN_NAME;
  #header: string;
  #trustIncoming: boolean;
  #generate: () => string;
  #onResponse: boolean;

  constructor(options: RequestIdOptions = {}) {
    this.#header = "X-Request-Id";
    this.#trustIncoming = true;
    this.#generate = randomUUID;
    this.#onResponse = true;
    this.reconfigure(options);
  }

  /** Takes new options (config reload). */
  reconfigure(options: unknown): void {
    const o = (options ?? {}) as RequestIdOptions;
    if (o.header !== undefined && (typeof o.header !== "string" || !TOKEN.test(o.header))) {
      throw new ConfigError(`${PLUGIN_NAME}: header must be a header name`);
    }
    if (o.generate !== undefined && typeof o.generate !== "function") {
      throw new ConfigError(`${PLUGIN_NAME}: generate must be a function`);
    }
    this.#header = o.header ?? "X-Request-Id";
    this.#trustIncoming = o.trustIncoming ?? true;
    this.#generate = o.generate ?? randomUUID;
    this.#onResponse = o.onResponse ?? true;
  }

  /** The id given to a request, as seen by later taps (`RequestIdPlugin.idOf(req)`). */
  static idOf(request: { meta: Record<string, unknown> }): string | undefined {
    const v = request.meta[PLUGIN_NAME];
    return typeof v === "string" ? v : undefined;
  }

  apply(proxy: Proxy): void {
    proxy.hooks.onRequest.tap({ name: PLUGIN_NAME, stage: Stage.TRANSFORM }, (req) => {
      if (!isHttpRequest(req)) return req;
      const incoming = getHeader(req.headers, this.#header);
      const id = this.#trustIncoming && incoming !== undefined && SANE_ID.test(incoming) ? incoming : this.#generate();
      setHeader(req.headers, this.#header, id);
      req.meta[PLUGIN_NAME] = id;
      return req;
    });
    proxy.hooks.onUpstreamResponse.tap({ name: PLUGIN_NAME, stage: Stage.TRANSFORM }, (res, req) => {
      if (!this.#onResponse || !req || !isHttpResponse(res) || res.error !== undefined) return res;
      const id = RequestIdPlugin.idOf(req);
      if (id !== undefined) setHeader(res.headers, this.#header, id);
      return res;
    });
  }
}

export default RequestIdPlugin;
