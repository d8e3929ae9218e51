// An ES module config: the default export is the config (or a function returning it).
// `defineConfig` only adds types; it resolves from the running switchyard command if this
// directory has no @switchyard/cli of its own.
import { defineConfig } from "@switchyard/cli";

const backends = (process.env.BACKENDS ?? "127.0.0.1:9001,127.0.0.1:9002").split(",");

export default defineConfig({
  listeners: [
    { name: "web", protocol: "http", host: "127.0.0.1", port: 8080 },
    { name: "raw", protocol: "tcp", host: "127.0.0.1", port: 7000 },
  ],
  routes: [
    { name: "app", listener: "web", match: { path: "/" }, targets: backends.map((b) => `http://${b}`) },
    { name: "raw", listener: "raw", targets: backends, lb: "random" },
  ],
  plugins: [
    { use: "@switchyard/plugin-headers", options: { xForwarded: true } },
    // a path relative to this file; its default export is a class, built as new C(options)
    { use: "./connection-audit-plugin.mjs", options: { label: "esm-example" } },
  ],
});
