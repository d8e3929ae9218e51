/**
 * The typed messages given to `onRequest` and `onUpstreamResponse` taps. Built only when a hook
 * is tapped; the untapped path never allocates them.
 */
import type { Readable } from "node:stream";
import type {
  ConnectionInfo,
  DirectResponse,
  HeaderPairs,
  HttpRequestMessage,
  HttpUpstreamResponse,
  ProxyError,
  RetryRequest,
  Route,
  Target,
} from "@switchyard/core";

export interface RequestInit {
  connection: ConnectionInfo;
  target: Target | undefined;
  id: string;
  route: Route;
  method: string;
  url: string;
  path: string;
  httpVersion: "1.0" | "1.1";
  headers: HeaderPairs;
  body: Readable | null;
  bodyLength: number | undefined;
  upgrade: boolean;
  scheme: "http" | "https";
}

export class HttpRequest implements HttpRequestMessage {
  readonly protocol = "http" as const;
  readonly connection: ConnectionInfo;
  readonly id: string;
  route: Route | undefined;
  target: Target | undefined = undefined;
  response: DirectResponse | undefined = undefined;
  readonly meta: Record<string, unknown> = {};
  /**
   * Per-attempt callback: when a retry sends this request to another target, it is called with
   * the new target and the request's headers (edit them in place) before the head is written
   * again. plugin-headers sets it for `rewriteHost: true`. Set it from an `onRequest` tap.
   */
  onRetarget: ((target: Target, headers: HeaderPairs) => void) | undefined = undefined;
  method: string;
  url: string;
  readonly path: string;
  readonly httpVersion: "1.0" | "1.1";
  headers: HeaderPairs;
  readonly body: Readable | null;
  readonly bodyLength: number | undefined;
  readonly upgrade: boolean;
  readonly scheme: "http" | "https";
  #buffered: Buffer | undefined;
  #buffering: Promise<boolean> | undefined;

  constructor(init: RequestInit) {
    this.connection = init.connection;
    this.id = init.id;
    this.route = init.route;
    this.target = init.target;
    this.method = init.method;
    this.url = init.url;
    this.path = init.path;
    this.httpVersion = init.httpVersion;
    this.headers = init.headers;
    this.body = init.body;
    this.bodyLength = init.bodyLength;
    this.upgrade = init.upgrade;
    this.scheme = init.scheme;
  }

  get replayable(): boolean {
    return this.body === null || this.#buffered !== undefined;
  }

  /** the whole body once `bufferBody` succeeded */
  get bufferedBody(): Buffer | undefined {
    return this.#buffered;
  }

  /** a `bufferBody` still in progress (a tap started it without waiting); undefined otherwise */
  get pendingBuffer(): Promise<boolean> | undefined {
    return this.#buffered === undefined ? this.#buffering : undefined;
  }

  bufferBody(maxBytes: number): Promise<boolean> {
    const body = this.body;
    if (body === null || this.#buffered !== undefined) return Promise.resolve(true);
    if (this.bodyLength !== undefined && this.bodyLength > maxBytes) return Promise.resolve(false);
    this.#buffering ??= new Promise<boolean>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const cleanup = () => {
        body.off("data", onData);
        body.off("end", onEnd);
        body.off("error", onError);
        body.off("close", onError);
      };
      const onData = (c: Buffer) => {
        chunks.push(c);
        size += c.length;
        if (size > maxBytes) {
          cleanup();
          body.pause();
          for (let i = chunks.length - 1; i >= 0; i--) body.unshift(chunks[i]);
          this.#buffering = undefined;
          resolve(false);
        }
      };
      const onEnd = () => {
        cleanup();
        this.#buffered = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        resolve(true);
      };
      const onError = () => {
        cleanup();
        resolve(false);
      };
      body.on("data", onData);
      body.once("end", onEnd);
      body.once("error", onError);
      body.once("close", onError);
    });
    return this.#buffering;
  }

  respond(status: number, headers?: HeaderPairs, body?: string | Buffer): void {
    const r: DirectResponse = { status };
    if (headers !== undefined) r.headers = headers;
    if (body !== undefined) r.body = body;
    this.response = r;
  }
}

export interface ResponseInit {
  attempt: number;
  target: Target | undefined;
  error: ProxyError | undefined;
  retryable: boolean;
  requestSent: boolean;
  reusedSocket: boolean;
  status: number | undefined;
  statusMessage: string | undefined;
  httpVersion: "1.0" | "1.1" | undefined;
  headers: HeaderPairs;
  /** null when the response has no body; otherwise opened on first access */
  body: BodyOpener | null;
}

/** Opens a response body stream (the exchange itself: no closure per response). */
export interface BodyOpener {
  openResponseBody(): Readable;
}

export class HttpResponse implements HttpUpstreamResponse {
  readonly protocol = "http" as const;
  readonly attempt: number;
  readonly target: Target | undefined;
  readonly error: ProxyError | undefined;
  readonly retryable: boolean;
  readonly requestSent: boolean;
  /**
   * the attempt ran on a pooled keep-alive socket that had served requests before (a reset on
   * it is most likely a stale connection); false for a fresh connection or a failed connect
   */
  readonly reusedSocket: boolean;
  retry: RetryRequest | undefined = undefined;
  status: number | undefined;
  statusMessage: string | undefined;
  httpVersion: "1.0" | "1.1" | undefined;
  headers: HeaderPairs;
  readonly #open: BodyOpener | null;
  #body: Readable | null | undefined;

  constructor(init: ResponseInit) {
    this.attempt = init.attempt;
    this.target = init.target;
    this.error = init.error;
    this.retryable = init.retryable;
    this.requestSent = init.requestSent;
    this.reusedSocket = init.reusedSocket;
    this.status = init.status;
    this.statusMessage = init.statusMessage;
    this.httpVersion = init.httpVersion;
    this.headers = init.headers;
    this.#open = init.body;
  }

  /** the body stream, created on first access (taps that never read it cost no stream) */
  get body(): Readable | null {
    if (this.#body === undefined) this.#body = this.#open === null ? null : this.#open.openResponseBody();
    return this.#body;
  }
}
