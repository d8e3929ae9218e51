import type { Proxy, ProxyPlugin } from "@switchyard/core";

export interface BannerOptions {
  /** the banner line: 1-512 printable ASCII characters (default "switchyard") */
  text?: string;
}

/** The protocol name this package registers. */
export declare const PROTOCOL_NAME: "banner";

/** Registers the "banner" protocol: a banner line to each client, then raw TCP to the route's backend. */
export declare class BannerProtocol implements ProxyPlugin {
  readonly name: "BannerProtocol";
  constructor(options?: BannerOptions);
  reconfigure(options?: BannerOptions): void;
  apply(proxy: Proxy): void;
}

export default BannerProtocol;
