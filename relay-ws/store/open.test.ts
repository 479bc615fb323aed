/**
 * Opening the store from configuration (relay-ws/store/open.ts): where the master key comes from
 * (file, environment, generated beside the data with a warning), the warnings an operator gets,
 * master-key rotation through the config, and data-dir checks.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultRelayConfig } from "../config.ts";
import { keyringEpochs } from "./keyring.ts";
import {
  GENERATED_KEY_FILE,
  loadMasterKeys,
  openRelayStore,
  prepareDataDir,
  sealFailoverMessage,
} from "./open.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "loft-relay-open-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function recordingLog() {
  const lines: string[] = [];
  return {
    lines,
    warn: (msg: unknown) => void lines.push(String(msg)),
    info: (obj: unknown, msg?: string) => void lines.push(`${msg ?? ""} ${JSON.stringify(obj)}`),
  };
}

describe("opening the relay store", () => {
  it("reads the master key from a file (no warning when it is private and apart from the data)", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const keyFile = join(tempDir(), "master.key");
    const key = randomBytes(32);
    writeFileSync(keyFile, `${key.toString("hex")}\n`, { mode: 0o600 });
    const log = recordingLog();
    const keys = loadMasterKeys({ masterKeyFile: keyFile, previousMasterKeyFile: "" }, data, log, {});
    expect(keys.key).toEqual(key);
    expect(keys.source).toBe("file");
    expect(log.lines).toEqual([]);
  });

  it("warns when the key file sits in the data dir or others can read it", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const keyFile = join(data, "my.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"), { mode: 0o644 });
    const log = recordingLog();
    loadMasterKeys({ masterKeyFile: keyFile, previousMasterKeyFile: "" }, data, log, {});
    expect(log.lines.join("\n")).toContain("inside the data dir");
    expect(log.lines.join("\n")).toContain("chmod 600");
  });

  it("takes LOFT_RELAY_MASTER_KEY from the environment, and refuses a malformed one", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const key = randomBytes(32);
    const log = recordingLog();
    expect(
      loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {
        LOFT_RELAY_MASTER_KEY: key.toString("hex"),
      }).key,
    ).toEqual(key);
    expect(() =>
      loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {
        LOFT_RELAY_MASTER_KEY: "short",
      }),
    ).toThrow(expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }));
  });

  it("without a key, generates one beside the data (0600), reuses it, and warns every time", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const log = recordingLog();
    const a = loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {});
    const b = loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {});
    expect(a.source).toBe("generated");
    expect(b.key).toEqual(a.key);
    expect(statSync(join(data, GENERATED_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(log.lines.filter((l) => l.includes("generated beside the data"))).toHaveLength(2);
  });

  it("rotates the master key through --relay-previous-master-key-file", async () => {
    const data = join(tempDir(), "data");
    const keys = tempDir();
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    writeFileSync(join(keys, "old"), oldKey.toString("hex"), { mode: 0o600 });
    writeFileSync(join(keys, "new"), newKey.toString("hex"), { mode: 0o600 });
    const log = recordingLog();
    let store = openRelayStore(defaultRelayConfig({ dataDir: data, masterKeyFile: join(keys, "old") }), {
      log,
    });
    await store.close();
    store = openRelayStore(
      defaultRelayConfig({
        dataDir: data,
        masterKeyFile: join(keys, "new"),
        previousMasterKeyFile: join(keys, "old"),
      }),
      { log },
    );
    await store.close();
    expect(keyringEpochs(data, newKey)).toEqual([[0], [0]]);
    expect(keyringEpochs(data, oldKey)).toEqual([undefined, undefined]);
    expect(log.lines.some((l) => l.includes('"rotatingFromPrevious":true'))).toBe(true);
    expect(log.lines.join("\n")).not.toContain(newKey.toString("hex"));
    expect(() =>
      openRelayStore(defaultRelayConfig({ dataDir: data, masterKeyFile: join(keys, "old") }), { log }),
    ).toThrow(expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }));
  });

  it("creates a missing data dir (0700, dotted names included) and refuses a file", () => {
    const parent = tempDir();
    const dotted = prepareDataDir(join(parent, "a.b", "relay.data"));
    expect(statSync(dotted).isDirectory()).toBe(true);
    expect(statSync(dotted).mode & 0o777).toBe(0o700);
    writeFileSync(join(parent, "file"), "x");
    expect(() => prepareDataDir(join(parent, "file"))).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_DATA_DIR" }),
    );
    mkdirSync(join(parent, "ok"));
    expect(prepareDataDir(join(parent, "ok"))).toBe(join(parent, "ok"));
    expect(existsSync(join(parent, "ok"))).toBe(true);
    expect(readFileSync(join(parent, "file"), "utf8")).toBe("x");
  });

  it("the seal-worker warning says what happened: a replacement that could not be started is not one that died", () => {
    for (const reason of ["timeout", "error", "exit"] as const)
      expect(sealFailoverMessage(reason)).toContain("stopped answering or died");
    expect(sealFailoverMessage("start")).toContain("a new seal worker could not be started");
    expect(sealFailoverMessage("start")).not.toContain("died");
  });
});
