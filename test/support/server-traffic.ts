/**
 * What the servers carried and stored, for the "no plaintext of the proxied site" checks
 * (docs/protocol/proxy.md, "Carrying frames over a session"; test/e2e/proxy.e2e.ts, cli.e2e.ts):
 * every WebSocket frame a page exchanged with signaling and the relay, and every file under a
 * server's data folder.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { expect } from "vitest";

/**
 * Records the WebSocket frames `pages` send and receive (CDP Network events: binary frames arrive
 * base64-encoded, text as is); returns what was seen so far, all frames concatenated.
 */
export async function recordWebSockets(pages: Page[]): Promise<() => Buffer> {
  const frames: Buffer[] = [];
  for (const page of pages) {
    const cdp = await page.context().newCDPSession(page);
    const take = (e: { response: { opcode: number; payloadData: string } }) =>
      frames.push(Buffer.from(e.response.payloadData, e.response.opcode === 2 ? "base64" : "utf8"));
    cdp.on("Network.webSocketFrameSent", take);
    cdp.on("Network.webSocketFrameReceived", take);
    await cdp.send("Network.enable");
  }
  return () => Buffer.concat(frames);
}

/** Every file under `dir`, concatenated. */
export async function readTree(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (entry.isFile()) parts.push(await readFile(join(entry.parentPath, entry.name)));
  return Buffer.concat(parts);
}

/**
 * None of `markers` (strings of the site, read as Latin-1 so that a slice of binary data is one
 * char per byte) is in `carried` — what crossed the servers, or what they stored: the failure
 * names the marker found.
 */
export function expectNoneOf(carried: Buffer, markers: string[]): void {
  for (const marker of markers) expect(carried.indexOf(Buffer.from(marker, "latin1")), marker).toBe(-1);
}
