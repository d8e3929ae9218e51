// Switchyard with a "postgres" and a "mysql" listener, run as its own process for the database
// bench. argv: pgPort mysqlPort (the backends, on 127.0.0.1). Sends "ready" with the postgres
// listener's port and, right after, { type: "ports", postgres, mysql }.
import { serveControl } from "./control.mjs";

const core = await import(new URL("../../packages/core/dist/index.js", import.meta.url).href);
const tcp = await import(new URL("../../packages/protocol-tcp/dist/index.js", import.meta.url).href);

const [pgPort, myPort] = [Number(process.argv[2]), Number(process.argv[3])];
const proxy = new core.Proxy({
  listeners: [
    { name: "pg", protocol: "postgres", host: "127.0.0.1", port: 0 },
    { name: "my", protocol: "mysql", host: "127.0.0.1", port: 0 },
  ],
  routes: [
    { name: "pg", listener: "pg", targets: [`127.0.0.1:${pgPort}`] },
    { name: "my", listener: "my", targets: [`127.0.0.1:${myPort}`] },
  ],
  plugins: [new tcp.PostgresProtocol(), new tcp.MysqlProtocol()],
  logger: core.silentLogger,
});
await proxy.listen();
process.send({ type: "ports", postgres: proxy.address("pg").port, mysql: proxy.address("my").port });
serveControl(proxy.address("pg").port, () => proxy.close({ timeout: 100 }), () => proxy.stats());
