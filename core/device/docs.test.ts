import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { buildDeviceVectors } from "../../scripts/gen-device-vectors.ts";
import { DEVICE_VECTORS_FILE } from "../../scripts/gen-device-vectors.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { encodeDeviceMessage } from "./messages.ts";

const PAGE = new URL("../../docs/device.md", import.meta.url);

/** The code blocks right after a `checked by core/device/docs.test.ts` marker, without whitespace. */
function checkedBlocks(): string {
  const text = readFileSync(PAGE, "utf8");
  const blocks: string[] = [];
  const re = /<!-- checked by core\/device\/docs\.test\.ts -->\s*```[a-z]*\n([\s\S]*?)```/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) blocks.push(m[1]!);
  expect(blocks.length).toBe(4);
  return blocks.join("\n").replace(/\s+/g, "");
}

describe("docs/device.md quotes the real bytes", () => {
  const v = JSON.parse(readFileSync(DEVICE_VECTORS_FILE, "utf8")) as ReturnType<typeof buildDeviceVectors>;
  const quoted = checkedBlocks();

  it("frames, HELLOs and the pairing vector", () => {
    for (const f of v.frames.slice(2)) expect(quoted).toContain(f.wire);
    expect(quoted).toContain(v.hello.owner.bytes);
    expect(quoted).toContain(v.hello.device.bytes);
    const p = v.pairing[0]!;
    expect(p.handshake_hash).toBe("11".repeat(32));
    expect(quoted).toContain(`commit=${p.commit}`);
    expect(quoted).toContain(`t=${p.digest}`);
    expect(quoted).toContain(`code=${p.code}`);
  });

  it("the message examples", () => {
    const text = readFileSync(PAGE, "utf8").replace(/\s+/g, "");
    expect(text).toContain(Buffer.from(encodeDeviceMessage({ t: "confirm" })).toString("hex"));
    expect(text).toContain(
      Buffer.from(encodeDeviceMessage({ t: "cmd", id: 1, c: "led on" })).toString("hex"),
    );
    // Through the relay (§13).
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    expect(text).toContain(hex(encodeDeviceMessage({ t: "relay-took" })));
    expect(text).toContain(hex(encodeDeviceMessage({ t: "relay-in", b: new Uint8Array(4).fill(9) })));
    expect(text).toContain(hex(encodeCanonical({ t: "dev.cmd", id: 1, c: "led on" })));
    const linked = hex(encodeDeviceMessage({ t: "linked", k: new Uint8Array(32).fill(7) }));
    expect(text).toContain(`${linked.slice(0, 10)}07…07${linked.slice(-18)}`);
  });
});
