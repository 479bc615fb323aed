/**
 * Real Chromium (Debian's /usr/bin/chromium) through playwright-core, with the flags that make
 * WebRTC work inside the test network namespace (docs/design.md, "Testing") and keep Chromium from
 * reaching out to the internet at start.
 */
import { type Browser, type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env.LOFT_CHROMIUM ?? "/usr/bin/chromium";

/** The flags every launch here uses (bench:files `--disk` launches Chromium itself with them). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * A Chromium of its own with a profile on disk in `dir` (storage on disk, as on a device: a
 * `newContext()` keeps IndexedDB and Blobs in memory, off the record — bench:files `--big`).
 */
export function launchPersistentChromium(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}
