// A minimal plugin loaded by path from a config file. The command picks the default export
// when it is a class (otherwise the one exported class whose name ends in "Plugin") and
// constructs it with the entry's `options`. `reconfigure` receives new options on SIGHUP.
export default class ConnectionAuditPlugin {
  name = "ConnectionAuditPlugin";

  constructor(options = {}) {
    if (options.label !== undefined && typeof options.label !== "string") {
      throw new TypeError("label must be a string");
    }
    this.label = options.label ?? "audit";
  }

  apply(proxy) {
    // the switchyard command's logger gives a child whose lines carry {"plugin":"ConnectionAuditPlugin"}
    const log = proxy.logger.child?.({ plugin: this.name }) ?? proxy.logger;
    proxy.hooks.onClose.tap({ name: this.name, stage: 1000 }, (connection, info) => {
      if (info.reason !== "done" && info.reason !== "client-closed") {
        log.info("audit", { label: this.label, id: connection.id, reason: info.reason });
      }
    });
  }

  reconfigure(options = {}) {
    this.label = options.label ?? "audit";
  }
}
