// A protocol published as its own package, usable from a switchyard config file:
//
//   plugins:
//     - use: proxy-protocol-banner          # registers the protocol "banner"
//       options: { text: "welcome" }        # the default banner
//   listeners:
//     - { name: greet, protocol: banner, port: 7000, options: { text: "hello" } }
//
// The package's plugin registers the protocol in `apply` (proxy.registerProtocol). Each accepted
// connection gets one banner line (CRLF-terminated) and is then handled as raw TCP by core's own
// TcpProtocol: routed by listener and client IP, bytes piped both ways.
import { ConfigError, TcpProtocol, unknownOptionMessage } from "@switchyard/core";

const PLUGIN_NAME = "BannerProtocol";
export const PROTOCOL_NAME = "banner";
const OPTIONS = ["text"];
const DEFAULT_TEXT = "switchyard";
/** one line of printable ASCII: nothing a client could read as a second line or a control */
const TEXT = /^[\x20-\x7e]{1,512}$/;

/** Throws ConfigError (message starting with `where`) for unknown keys or a bad `text`. */
function checkOptions(options, where) {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ConfigError(`${where}: must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTIONS.includes(key)) throw new ConfigError(`${where}: ${unknownOptionMessage(key, OPTIONS)}`);
  }
  if (options.text !== undefined && (typeof options.text !== "string" || !TEXT.test(options.text))) {
    throw new ConfigError(`${where}: text must be 1-512 printable ASCII characters`);
  }
}

export class BannerProtocol {
  name = PLUGIN_NAME;
  #text = DEFAULT_TEXT;
  #tcp = new TcpProtocol();

  /** `options.text`: the banner of listeners that set none (default "switchyard"). */
  constructor(options = {}) {
    this.reconfigure(options);
  }

  /** New default banner on a config reload (SIGHUP); connections accepted from then on get it. */
  reconfigure(options = {}) {
    checkOptions(options, PLUGIN_NAME);
    this.#text = options.text ?? DEFAULT_TEXT;
  }

  apply(proxy) {
    proxy.registerProtocol({
      name: PROTOCOL_NAME,
      // TLS listeners: the core terminates TLS first, the banner goes over TLS
      tlsMode: "accept",
      checkListenerOptions: checkOptions,
      handle: (conn) => {
        conn.socket.write(`${conn.listener.options?.text ?? this.#text}\r\n`);
        return this.#tcp.handle(conn);
      },
    });
  }
}

export default BannerProtocol;
