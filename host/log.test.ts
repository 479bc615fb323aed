/** Log lines never carry an address, even inside a serialized network error. */
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { createLogger } from "./log.ts";

describe("logs", () => {
  it("drop the address of a network error, keep its code", async () => {
    const lines: string[] = [];
    const log = createLogger("log-test", "info", { write: (line: string) => lines.push(line) });
    // A real refused connection on loopback (port 1 is closed here), as an `err` field.
    const err = await new Promise<Error>((resolve) => connect(1, "127.0.0.9").on("error", resolve));
    log.error({ err }, "failed");
    log.error({ err: new Error("connect ECONNRESET ::ffff:127.0.0.9:443 and [::1]:80") }, "v6");
    log.info({ address: "127.0.0.9", remoteAddress: "127.0.0.9", nested: { ip: "127.0.0.9" } }, "x");
    expect(lines.join("")).toMatch(/ECONNREFUSED/);
    expect(lines.join("")).not.toMatch(/"address"|"ip"|"remoteAddress"|127\.0\.0\.9|::1/);
  });
});
