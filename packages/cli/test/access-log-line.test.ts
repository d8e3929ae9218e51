import { expect } from "chai";
import type { RequestRecord } from "@switchyard/core";
import { requestJson } from "../dist/event-log.js";
import { createCommandLogger } from "../dist/logger.js";

// The access-log line is serialized by hand (the command's hottest log path): it must stay valid
// JSON with the record's fields, whatever the strings hold.
describe("the access-log line (http.request)", () => {
  const record: RequestRecord = {
    id: "c1.2",
    connectionId: "c1",
    listener: "web",
    protocol: "http",
    route: undefined,
    target: "127.0.0.1:3000",
    clientIp: "::1",
    method: "GET",
    path: '/a"b\\c\u0001\u2028é\ud800',
    status: 0,
    durationMs: 1.23456789,
    upstreamTtfbMs: undefined,
    bytesIn: 10,
    bytesOut: 20,
    attempts: 2,
    error: "PRX_ERR_UPSTREAM_RESET",
  };

  it("is JSON with every field; absent values are null, times in ms to the µs", () => {
    const parsed = JSON.parse(`{${requestJson(record)}}`) as Record<string, unknown>;
    expect(parsed).to.deep.equal({
      ...record,
      route: null,
      upstreamTtfbMs: null,
      durationMs: 1.235,
    });
  });

  it("is written as one line in the shape of the command's other lines", () => {
    const lines: string[] = [];
    const log = createCommandLogger("info", (l) => lines.push(l));
    log.infoJson("http.request", requestJson({ ...record, path: "/plain", route: "app", upstreamTtfbMs: 0.5 }));
    log.info("connection.open", { id: "c1" });
    expect(lines).to.have.length(2);
    const [req, open] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(req!).slice(0, 3)).to.deep.equal(Object.keys(open!).slice(0, 3)); // level, time, msg
    expect(req).to.include({ level: "info", msg: "http.request", path: "/plain", route: "app", upstreamTtfbMs: 0.5 });
    expect(Date.parse(req!.time as string)).to.be.closeTo(Date.now(), 5000);
    log.setLevel("warn");
    log.infoJson("http.request", requestJson(record));
    expect(lines).to.have.length(2);
  });
});
