/** Which REGISTER audiences name this service (signaling/audience.ts; docs/protocol/signaling.md, "Audience"). */
import { describe, expect, it } from "vitest";
import { audienceAccepted } from "./audience.ts";

describe("audienceAccepted", () => {
  it("by default accepts the URL the client reached: ws(s)/http(s), the Host, /signal", () => {
    expect(audienceAccepted("ws://127.0.0.1:8080/signal", "127.0.0.1:8080", [])).toBe(true);
    expect(audienceAccepted("wss://loft.example/signal", "loft.example", [])).toBe(true);
    expect(audienceAccepted("wss://loft.example:443/signal", "loft.example", [])).toBe(true);
    expect(audienceAccepted("wss://LOFT.example/signal/", "loft.example:443", [])).toBe(true);
    expect(audienceAccepted("https://loft.example/signal", "loft.example", [])).toBe(true);
  });

  it("refuses another host, port, path, a missing audience or garbage", () => {
    expect(audienceAccepted("wss://other.example/signal", "loft.example", [])).toBe(false);
    expect(audienceAccepted("ws://127.0.0.1:8081/signal", "127.0.0.1:8080", [])).toBe(false);
    expect(audienceAccepted("wss://loft.example/relay", "loft.example", [])).toBe(false);
    expect(audienceAccepted("wss://loft.example/signal?x=1", "loft.example", [])).toBe(false);
    expect(audienceAccepted("wss://user@loft.example/signal", "loft.example", [])).toBe(false);
    expect(audienceAccepted(undefined, "loft.example", [])).toBe(false);
    expect(audienceAccepted("loft.example", "loft.example", [])).toBe(false);
    expect(audienceAccepted("ftp://loft.example/signal", "loft.example", [])).toBe(false);
    expect(audienceAccepted("wss://loft.example/signal", undefined, [])).toBe(false);
  });

  it("with configured public URLs, accepts exactly those (whatever the Host says)", () => {
    const configured = ["wss://loft.example/loft/signal"];
    expect(audienceAccepted("wss://loft.example/loft/signal", "127.0.0.1:8080", configured)).toBe(true);
    expect(audienceAccepted("wss://loft.example:443/loft/signal/", "x", configured)).toBe(true);
    // The Host default no longer applies, and a plain-text scheme is not the TLS URL.
    expect(audienceAccepted("ws://127.0.0.1:8080/signal", "127.0.0.1:8080", configured)).toBe(false);
    expect(audienceAccepted("ws://loft.example/loft/signal", "loft.example", configured)).toBe(false);
  });
});
