// Runs inside a temporary project that installed every Switchyard package from its tarball.
// Composes core + HTTP + both plugins + the third-party request-id plugin, sends a request and
// checks what the backend and the client saw. Exits non-zero on any mismatch.
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { Proxy, silentLogger } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { HeadersPlugin } from "@switchyard/plugin-headers";
import { RetryPlugin } from "@switchyard/plugin-retry";
import { RequestIdPlugin } from "proxy-plugin-request-id";

function fail(msg) {
  console.error(`compose: ${msg}`);
  process.exit(1);
}

let seen;
const backend = http.createServer((req, res) => {
  seen = req.headers;
  res.end("hello from backend");
});
backend.listen(0, "127.0.0.1");
await once(backend, "listening");
const echo = net.createServer((s) => s.pipe(s));
echo.listen(0, "127.0.0.1");
await once(echo, "listening");

const proxy = new Proxy({
  logger: silentLogger,
  listeners: [
    { name: "web", protocol: "http", host: "127.0.0.1", port: 0 },
    { name: "raw", protocol: "tcp", host: "127.0.0.1", port: 0 },
  ],
  routes: [
    { name: "api", listener: "web", targets: [`127.0.0.1:${backend.address().port}`] },
    { name: "echo", listener: "raw", targets: [`127.0.0.1:${echo.address().port}`] },
  ],
  plugins: [new HttpProtocol(), new HeadersPlugin(), new RetryPlugin({ retries: 1 }), new RequestIdPlugin()],
});
await proxy.listen();

const body = await new Promise((resolve, reject) => {
  http
    .get({ host: "127.0.0.1", port: proxy.address("web").port, path: "/x", headers: { host: "app.test" } }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, data }));
    })
    .on("error", reject);
});
if (body.status !== 200 || body.data !== "hello from backend") fail(`unexpected response ${body.status} ${body.data}`);
if (!seen["x-forwarded-for"]) fail("backend saw no X-Forwarded-For (plugin-headers not applied)");
if (!seen["x-request-id"]) fail("backend saw no X-Request-Id (proxy-plugin-request-id not applied)");
if (body.headers["x-request-id"] !== seen["x-request-id"]) fail("response X-Request-Id differs from the request's");

const sock = net.connect(proxy.address("raw").port, "127.0.0.1");
sock.write("ping");
const [echoed] = await once(sock, "data");
if (echoed.toString() !== "ping") fail("tcp echo mismatch");
sock.destroy();

await proxy.close({ timeout: 500 });
backend.close();
echo.close();
console.log("compose ok: http + tcp through packages installed from tarballs");
