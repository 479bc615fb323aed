/**
 * Opening the relay store from its configuration (docs/operations-relay.md §Storage, §Keys): check
 * the data dir, load the master key (a file, or LOFT_RELAY_MASTER_KEY; never a flag, which `ps`
 * would show), and open the LMDB store. Every problem is a StoreError with a message an operator
 * can act on, raised before the relay listens.
 */
import { randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import type { Logger } from "../../host/log.ts";
import type { RelayConfig } from "../config.ts";
import { StoreError } from "./errors.ts";
import { MASTER_KEY_LENGTH } from "./keyring.ts";
import { LmdbStore } from "./lmdb.ts";
import { RedisStore } from "./redis.ts";
import type { SealFailover } from "./seal-pool.ts";

/** The file a generated master key goes to when the operator gives none (development only). */
export const GENERATED_KEY_FILE = "master.key";
export const MASTER_KEY_ENV = "LOFT_RELAY_MASTER_KEY";

/**
 * A master key from its text or bytes: 64 hex digits, base64 / base64url of 32 bytes (surrounding
 * whitespace ignored), or exactly 32 raw bytes. Undefined for anything else.
 */
export function parseMasterKey(raw: Uint8Array): Buffer | undefined {
  const text = Buffer.from(raw).toString("latin1").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) {
    const b = Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (b.length === MASTER_KEY_LENGTH) return b;
  }
  if (raw.length === MASTER_KEY_LENGTH) return Buffer.from(raw);
  return undefined;
}

/** Create the data dir if missing; refuse a path that is not a writable directory. */
export function prepareDataDir(path: string): string {
  const dir = resolve(path);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new StoreError("LOFT_ERR_RELAY_DATA_DIR", `--relay-data-dir ${dir} exists and is not a directory`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new StoreError(
      "LOFT_ERR_RELAY_DATA_DIR",
      `--relay-data-dir ${dir} cannot be created or written (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  return dir;
}

function readKeyFile(path: string, what: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new StoreError(
      "LOFT_ERR_RELAY_MASTER_KEY",
      `${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const key = parseMasterKey(raw);
  raw.fill(0);
  if (!key)
    throw new StoreError(
      "LOFT_ERR_RELAY_MASTER_KEY",
      `${what} ${path} must hold 32 bytes: 64 hex digits, base64, or raw (make one with: openssl rand -hex 32)`,
    );
  return key;
}

const inside = (dir: string, file: string): boolean => {
  const rel = relative(realpathSync(dir), realpathSync(dirname(file)));
  return rel === "" || (!rel.startsWith("..") && !rel.startsWith("/"));
};

export interface MasterKeys {
  key: Buffer;
  previous: Buffer | undefined;
  /** Where the key came from, for the start-up log (never the key). */
  source: "file" | "env" | "generated";
}

/** The master key (and the previous one, during a rotation), warning about weak setups. */
export function loadMasterKeys(
  config: Pick<RelayConfig, "masterKeyFile" | "previousMasterKeyFile">,
  dataDir: string,
  log: Pick<Logger, "warn">,
  env: Record<string, string | undefined> = process.env,
): MasterKeys {
  const previous = config.previousMasterKeyFile
    ? readKeyFile(config.previousMasterKeyFile, "--relay-previous-master-key-file")
    : undefined;
  if (config.masterKeyFile) {
    const key = readKeyFile(config.masterKeyFile, "--relay-master-key-file");
    if (dataDir !== "" && inside(dataDir, config.masterKeyFile))
      log.warn(
        "relay master key file is inside the data dir: a copy of the data dir decrypts everything stored; keep it on another disk",
      );
    if ((statSync(config.masterKeyFile).mode & 0o077) !== 0)
      log.warn("relay master key file is readable by group or others: chmod 600 it");
    return { key, previous, source: "file" };
  }
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined) {
    const key = parseMasterKey(Buffer.from(fromEnv, "latin1"));
    if (!key)
      throw new StoreError(
        "LOFT_ERR_RELAY_MASTER_KEY",
        `${MASTER_KEY_ENV} must be 32 bytes as 64 hex digits or base64 (make one with: openssl rand -hex 32)`,
      );
    return { key, previous, source: "env" };
  }
  // No key given: development mode. A key beside the data still makes deletion real (epoch keys
  // are destroyed), but a copy of the folder decrypts what it holds.
  const path = join(dataDir, GENERATED_KEY_FILE);
  let key: Buffer;
  if (existsSync(path)) key = readKeyFile(path, "generated master key");
  else {
    key = randomBytes(MASTER_KEY_LENGTH);
    const fd = openSync(path, "wx", 0o600);
    try {
      writeSync(fd, `${key.toString("hex")}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  log.warn(
    `relay master key generated beside the data (${GENERATED_KEY_FILE} in the data dir): a copy of the data dir decrypts everything stored; set --relay-master-key-file (on another disk) or ${MASTER_KEY_ENV}`,
  );
  return { key, previous, source: "generated" };
}

/** The warning logged when the store seals on the event loop instead of its worker (`reason`). */
export function sealFailoverMessage(reason: SealFailover): string {
  return reason === "start"
    ? "relay store: a new seal worker could not be started; stored messages are sealed on the event loop until one can be (tried again after the back-off; nothing lost)"
    : "relay store: the seal worker stopped answering or died; stored messages are sealed on the event loop until a new worker replaces it (nothing lost)";
}

/** Open the store described by `config` (data dir, keys, quotas, expiry). */
export function openRelayStore(
  config: RelayConfig,
  deps: {
    log: Pick<Logger, "warn" | "info">;
    clock?: () => number;
    env?: Record<string, string | undefined>;
  },
): LmdbStore {
  const dir = prepareDataDir(config.dataDir);
  const keys = loadMasterKeys(config, dir, deps.log, deps.env);
  deps.log.info(
    {
      masterKey: keys.source,
      rotatingFromPrevious: keys.previous !== undefined,
      keyEpochSeconds: config.keyEpochSeconds,
      quotaBytes: config.storeQuotaBytes,
      queueIdleDays: config.queueIdleDays,
    },
    "relay store keys and limits",
  );
  try {
    return new LmdbStore({
      path: dir,
      masterKey: keys.key,
      previousMasterKey: keys.previous,
      sync: config.sync,
      keyEpochMs: config.keyEpochSeconds * 1000,
      quotaBytes: config.storeQuotaBytes,
      minFreeDiskBytes: config.minFreeDiskBytes,
      idleQueueMs: config.queueIdleDays * 86_400_000,
      hotBlockBytes: config.hotBlockBytes,
      sealThreads: config.sealThreads,
      onSealFailover: (reason, detail) =>
        deps.log.warn(
          {
            reason,
            jobs: detail.jobs,
            ...(detail.error instanceof Error ? { error: detail.error.message } : {}),
          },
          sealFailoverMessage(reason),
        ),
      onSealRespawn: (detail) =>
        deps.log.info(
          { delayMs: detail.delayMs, respawns: detail.respawns },
          "relay store: a new seal worker replaced the failed one; stored messages are sealed on it again",
        ),
      onNoSpace: (cause) =>
        deps.log.warn(
          { code: (cause as { code?: unknown } | undefined)?.code },
          "relay store: the disk refused a write; new messages get FULL until it has room again (what is stored is kept)",
        ),
      ...(deps.clock ? { clock: deps.clock } : {}),
    });
  } finally {
    keys.key.fill(0);
    keys.previous?.fill(0);
  }
}

/**
 * Open the Redis store (`--redis URL`; docs/operations.md, "Scale-out on Redis"). Every instance
 * must hold the same master key, so one is never generated here: it comes from
 * --relay-master-key-file or LOFT_RELAY_MASTER_KEY. Waits up to `waitMs` for Redis.
 */
export async function openRedisRelayStore(
  config: RelayConfig,
  url: string,
  deps: {
    log: Pick<Logger, "warn" | "info">;
    clock?: () => number;
    env?: Record<string, string | undefined>;
    waitMs?: number;
  },
): Promise<RedisStore> {
  const env = deps.env ?? process.env;
  if (!config.masterKeyFile && env[MASTER_KEY_ENV] === undefined)
    throw new StoreError(
      "LOFT_ERR_RELAY_MASTER_KEY",
      `--redis needs the master key every instance shares: --relay-master-key-file or ${MASTER_KEY_ENV}`,
    );
  // No data dir with Redis (""): nothing to keep the key apart from.
  const keys = loadMasterKeys(config, "", deps.log, env);
  deps.log.info(
    {
      engine: "redis",
      // Not the URL: logs carry no address (docs/operations-relay.md, "Logs").
      redisTls: url.startsWith("rediss:"),
      prefix: config.redisPrefix,
      waitReplicas: config.redisWait,
      masterKey: keys.source,
      keyEpochSeconds: config.keyEpochSeconds,
      quotaBytes: config.storeQuotaBytes,
      queueIdleDays: config.queueIdleDays,
    },
    "relay store keys and limits",
  );
  try {
    return await RedisStore.open({
      url,
      masterKey: keys.key,
      previousMasterKey: keys.previous,
      prefix: config.redisPrefix,
      keyEpochMs: config.keyEpochSeconds * 1000,
      quotaBytes: config.storeQuotaBytes,
      idleQueueMs: config.queueIdleDays * 86_400_000,
      waitReplicas: config.redisWait,
      waitTimeoutMs: config.redisWaitTimeoutMs,
      hotBlockBytes: config.hotBlockBytes,
      ...(deps.waitMs === undefined ? {} : { waitMs: deps.waitMs }),
      ...(deps.clock ? { clock: deps.clock } : {}),
      onStatus: (status, reason) =>
        status === "ready"
          ? deps.log.info("relay store: Redis reachable")
          : deps.log.warn(
              { reason },
              "relay store: Redis unreachable; commands answer UNAVAILABLE, /health 503, until it is back",
            ),
      onWeakDurability: (why) =>
        deps.log.warn(`relay store: ${why} (docs/operations.md, "What OK means on Redis")`),
    });
  } finally {
    keys.key.fill(0);
    keys.previous?.fill(0);
  }
}
