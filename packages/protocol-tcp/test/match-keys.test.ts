import { expect } from "chai";
import { ConfigError, Proxy, silentLogger } from "@switchyard/core";
import { MysqlProtocol, PostgresProtocol } from "@switchyard/protocol-tcp";

describe("protocol-tcp match keys", () => {
  it("registers database, user and application_name as globs, so the proxy knows them and a conflicting kind is refused", () => {
    const proxy = new Proxy({ logger: silentLogger, listeners: [], plugins: [new PostgresProtocol(), new MysqlProtocol()] });
    const kinds = new Map(proxy.matchKeys);
    expect(kinds.get("database")).to.equal("glob");
    expect(kinds.get("user")).to.equal("glob");
    expect(kinds.get("application_name")).to.equal("glob");
    expect(() => proxy.registerMatchKey("database", "host-glob")).to.throw(ConfigError);
  });
});
