import { ConfigError } from "@switchyard/core";

/** The message of the `ConfigError` that `fn` throws; throws itself when `fn` throws nothing or something else. */
export function configErrorMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw new Error(`expected a ConfigError, got: ${String(err)}`, { cause: err });
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}
