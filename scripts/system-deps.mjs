// Installs the Debian packages the test suite needs and npm cannot provide (Chromium for the
// browser tests, python3-dissononce as the independent Noise implementation, python3-cryptography for the
// independent vector checker, socat for serial
// emulation, gcc, libc6-dev and libsodium-dev for the device protocol's C reference and C Noise peer, coturn for relay-only WebRTC paths, nginx and openssl to run the documented reverse
// proxy example against the real server and systemd-analyze to check the unit, both in
// server/proxy-example.test.ts, redis-server for the scale-out mode, and fonts-noto-color-emoji so
// headless Chromium draws emoji in screenshots instead of empty boxes). Runs apt only as root and only for what is missing; otherwise it
// explains what to install and exits non-zero.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const NEEDS = [
  { pkg: "chromium", present: () => existsSync("/usr/bin/chromium") },
  {
    pkg: "python3-dissononce",
    present: () =>
      spawnSync("/usr/bin/python3", ["-c", "import dissononce"], { stdio: "ignore" }).status === 0,
  },
  // test/interop/vectorcheck: the independent checker of the ratchet, PQXDH and other vectors.
  {
    pkg: "python3-cryptography",
    present: () =>
      spawnSync("/usr/bin/python3", ["-c", "import cryptography.hazmat.primitives.ciphers.aead"], {
        stdio: "ignore",
      }).status === 0,
  },
  { pkg: "socat", present: () => existsSync("/usr/bin/socat") },
  // The C reference of the device protocol (device/c) is compiled by device/c.test.ts.
  { pkg: "gcc", present: () => existsSync("/usr/bin/cc") },
  { pkg: "libc6-dev", present: () => existsSync("/usr/include/stdio.h") },
  // device/c-noise.test.ts: a C Noise responder on libsodium, the library a firmware would use.
  { pkg: "libsodium-dev", present: () => existsSync("/usr/include/sodium.h") },
  { pkg: "coturn", present: () => existsSync("/usr/bin/turnserver") },
  { pkg: "iproute2", present: () => existsSync("/usr/sbin/ip") || existsSync("/sbin/ip") },
  { pkg: "nginx", present: () => existsSync("/usr/sbin/nginx") },
  { pkg: "openssl", present: () => existsSync("/usr/bin/openssl") },
  { pkg: "systemd", present: () => existsSync("/usr/bin/systemd-analyze") },
  // Scale-out mode (--redis): test/support/redis-server.ts starts Debian's redis-server on loopback.
  { pkg: "redis-server", present: () => existsSync("/usr/bin/redis-server") },
  // Headless Chromium has no emoji font of its own: without it emoji render as empty boxes in screenshots.
  {
    pkg: "fonts-noto-color-emoji",
    present: () => existsSync("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
  },
];

export function ensureSystemDeps(extra = []) {
  const missing = [...NEEDS, ...extra].filter((n) => !n.present()).map((n) => n.pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(
      `missing Debian packages: ${missing.join(" ")}\nrun: sudo apt-get install -y ${missing.join(" ")}`,
    );
    process.exit(1);
  }
  console.log(`installing Debian packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env,
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const extra = process.argv.slice(2).map((pkg) => ({ pkg, present: () => false }));
  ensureSystemDeps(extra);
}
