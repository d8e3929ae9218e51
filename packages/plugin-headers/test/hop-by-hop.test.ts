import { expect } from "chai";
import type { HeaderPairs } from "@switchyard/core";
import { HOP_BY_HOP, hopByHopNames, stripHopByHop } from "@switchyard/plugin-headers";

describe("stripHopByHop", () => {
  it("has the RFC 9110 §7.6.1 connection-specific fields, plus Trailer and the proxy-authentication fields by choice", () => {
    expect([...HOP_BY_HOP].sort()).to.deep.equal(
      ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"].sort(),
    );
  });

  it("removes every hop-by-hop field whatever its case, keeping order of the rest", () => {
    const h: HeaderPairs = [
      ["Host", "a"],
      ["CONNECTION", "keep-alive"],
      ["Keep-Alive", "timeout=5"],
      ["Proxy-Connection", "keep-alive"],
      ["Proxy-Authorization", "Basic x"],
      ["Proxy-Authenticate", "Basic"],
      ["te", "trailers"],
      ["Trailer", "X-Sum"],
      ["Transfer-Encoding", "chunked"],
      ["Upgrade", "websocket"],
      ["X-One", "1"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ];
    const removed = stripHopByHop(h);
    expect(h).to.deep.equal([
      ["Host", "a"],
      ["X-One", "1"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ]);
    expect(removed).to.include.members(["connection", "keep-alive", "upgrade", "transfer-encoding"]);
  });

  it("removes every field named by a Connection token, across repeated Connection fields", () => {
    const h: HeaderPairs = [
      ["Connection", "close, X-Secret"],
      ["connection", " x-other ,"],
      ["X-Secret", "s"],
      ["x-other", "o"],
      ["X-Kept", "k"],
    ];
    stripHopByHop(h);
    expect(h).to.deep.equal([["X-Kept", "k"]]);
  });

  it("never lets a Connection token remove Host or Content-Length", () => {
    const h: HeaderPairs = [
      ["Host", "example.com"],
      ["Content-Length", "3"],
      ["Connection", "host, content-length, x-forwarded-for"],
      ["X-Forwarded-For", "1.2.3.4"],
    ];
    stripHopByHop(h);
    expect(h).to.deep.equal([
      ["Host", "example.com"],
      ["Content-Length", "3"],
    ]);
    expect(hopByHopNames([["Connection", "Host"]]).has("host")).to.equal(false);
  });

  it("keeps Upgrade and writes Connection: upgrade for a tunnel", () => {
    const h: HeaderPairs = [
      ["Host", "a"],
      ["Connection", "keep-alive, Upgrade"],
      ["Upgrade", "websocket"],
      ["Keep-Alive", "1"],
      ["Sec-WebSocket-Key", "k"],
    ];
    stripHopByHop(h, { tunnel: true });
    expect(h).to.deep.equal([
      ["Host", "a"],
      ["Upgrade", "websocket"],
      ["Sec-WebSocket-Key", "k"],
      ["Connection", "upgrade"],
    ]);
  });

  it("does not invent Connection: upgrade for a tunnel without an Upgrade field", () => {
    const h: HeaderPairs = [["Connection", "upgrade"]];
    stripHopByHop(h, { tunnel: true });
    expect(h).to.deep.equal([]);
  });
});
