/**
 * The host against hostile HTTP: request targets that are not URLs, and clients that reset the
 * connection while an upgrade is refused. Each must get an answer (or a cut connection) and the
 * process must keep serving; vitest fails the run on any uncaught exception or rejection.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Host } from "./host.ts";
import { rawExchange, testHost, upgradeRequest as upgrade } from "./http-testing.ts";

let host: Host;
let port: number;

beforeEach(async () => {
  host = testHost();
  port = await host.listen();
});
afterEach(() => host.close());

const raw = (text: string, reset = false) => rawExchange(port, text, reset);

describe("host", () => {
  it("answers 400 to a request target that is not a URL, and keeps serving", async () => {
    expect(await raw("GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw("HEAD //x:y@ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).toMatch(
      /^HTTP\/1\.1 400/,
    );
    expect(await raw(upgrade("//"))).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it("answers OPTIONS without crashing, and HEAD /health like GET without a body", async () => {
    expect(await raw("OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).toMatch(
      /^HTTP\/1\.1 404/,
    );
    const get = await raw("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const head = await raw("HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    const [headHead, headBody] = head.split("\r\n\r\n");
    expect(headBody).toBe("");
    const length = (text: string) => /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
    expect(length(headHead ?? "")).toBe(length(get));
    expect(headHead).toMatch(/\r\ncontent-type: application\/json/i);
  });

  it("survives clients that reset while an upgrade is refused", async () => {
    for (let i = 0; i < 50; i++) await raw(upgrade("/nope"), true);
    for (let i = 0; i < 50; i++) await raw(upgrade("//"), true);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });
});
