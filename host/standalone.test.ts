/**
 * A listener that cannot bind is refused naming its options as the operator set them
 * (host/standalone.ts `listenRefusal`, host/config.ts `optionName`): `PORT` from the environment
 * is named `PORT`, a flag by the flag, a default by the flag that changes it.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, int, readConfig, str } from "./config.ts";
import { ListenError } from "./host.ts";
import { metricsOptions } from "./metrics.ts";
import { listenRefusal } from "./standalone.ts";

const specs = {
  port: { flag: "port", env: "PORT", default: 8080, parse: int(0, 65535), help: "" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "" },
  ...metricsOptions,
};

const inUse = (listener: "main" | "metrics") =>
  new ListenError(listener, "127.0.0.1", 9000, Object.assign(new Error("in use"), { code: "EADDRINUSE" }));

function refusal(e: unknown): string {
  expect(e).toBeInstanceOf(ConfigError);
  return (e as ConfigError).message;
}

describe("listenRefusal", () => {
  it("names the port and host as they were set", () => {
    expect(refusal(listenRefusal(inUse("main"), readConfig(specs, [], { PORT: "9000" })))).toBe(
      "PORT/--host: cannot listen on main listener 127.0.0.1:9000: EADDRINUSE",
    );
    expect(
      refusal(listenRefusal(inUse("main"), readConfig(specs, ["--port", "9000"], { HOST: "127.0.0.1" }))),
    ).toBe("--port/HOST: cannot listen on main listener 127.0.0.1:9000: EADDRINUSE");
    expect(
      refusal(listenRefusal(inUse("metrics"), readConfig(specs, [], { LOFT_METRICS_PORT: "9000" }))),
    ).toBe("LOFT_METRICS_PORT/--metrics-host: cannot listen on metrics listener 127.0.0.1:9000: EADDRINUSE");
  });

  it("passes anything else through unchanged", () => {
    const other = new Error("something else");
    expect(listenRefusal(other, readConfig(specs, [], {}))).toBe(other);
  });
});
