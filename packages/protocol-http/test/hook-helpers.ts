export { appendHeader, getHeader, isHttpRequest, isHttpResponse, setHeader, Stage } from "@switchyard/core";
export type { HttpRequestMessage, ProxyPlugin, Target } from "@switchyard/core";
import type { Target } from "@switchyard/core";

export function parseTargetForTest(s: string): Target {
  const [host, port] = s.split(":");
  return { host: host!, port: Number(port) };
}
