/**
 * Real Chromium (Debian's /usr/bin/chromium) through playwright-core, with the flags that make
 * WebRTC work inside the test network namespace (docs/design.md, "Testing") and keep Chromium from
 * reaching out to the internet at start.
 */
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env.LOFT_CHROMIUM ?? "/usr/bin/chromium";

export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}
