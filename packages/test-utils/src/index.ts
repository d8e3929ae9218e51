export { createTestCa, type TestCa, type CertPair } from "./certs.js";
export {
  startTcpServer,
  startEchoServer,
  closedPort,
  connectTo,
  readAll,
  readBytes,
  waitClose,
  type TestServer,
} from "./servers.js";
export { waitFor, sleep, staysTrue } from "./wait.js";
export { seededRandom, forEachConcurrently, seedBatches } from "./fuzz.js";
export { expectNoActiveConnections, resourceBaseline, leakedResources, expectNoLeakedResources } from "./leaks.js";
export { startBlackhole, type Blackhole } from "./blackhole.js";
export { startProxy, type StartedProxy } from "./proxy.js";
export { useTcpFixture, type TcpFixture } from "./tcp-fixture.js";
export {
  startRawBackend,
  rawRequest,
  reply,
  parseHead,
  header,
  headerNames,
  type RawRequest,
  type RawBackend,
  type RawHandler,
  type RawResponse,
} from "./raw-http.js";
export { configErrorMessage } from "./config-error.js";
export { gatedResolve } from "./gated-resolve.js";
