/**
 * The emulator's flash: the device state as a JSON file (mode 0600), replaced atomically (write a
 * temporary file, fsync, rename) so a kill mid-write leaves the old or the new state, never half.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { fromHex, toHex } from "../core/bytes.ts";
import type { DeviceState, DeviceStore } from "./agent.ts";

interface StateFile {
  v: 1;
  seed: string;
  created: number;
  username: string;
  owner?: string;
  protocol?: "XXhfs" | "XX";
  provision?: unknown;
  /** Relay settings and the ratchet with the owner (docs/device.md §13); bytes as { $hex }. */
  relay?: unknown;
}

function revive(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && "$hex" in value)
    return fromHex(String((value as { $hex: unknown }).$hex));
  return value;
}

function replace(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { $hex: toHex(value) };
  return value;
}

export function fileStore(path: string): DeviceStore {
  return {
    async load() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
      const f = JSON.parse(text, revive) as StateFile;
      if (f.v !== 1) throw new Error(`${path}: unknown state version ${String(f.v)}`);
      const state: DeviceState = { seed: fromHex(f.seed), created: f.created, username: f.username };
      if (f.owner !== undefined) state.owner = fromHex(f.owner);
      if (f.protocol !== undefined) state.protocol = f.protocol;
      if (f.provision !== undefined) state.provision = f.provision as DeviceState["provision"];
      if (f.relay !== undefined) state.relay = f.relay as DeviceState["relay"];
      return state;
    },
    async save(state) {
      const f: StateFile = {
        v: 1,
        seed: toHex(state.seed),
        created: state.created,
        username: state.username,
        ...(state.owner ? { owner: toHex(state.owner) } : {}),
        ...(state.protocol ? { protocol: state.protocol } : {}),
        ...(state.provision ? { provision: state.provision } : {}),
        ...(state.relay ? { relay: state.relay } : {}),
      };
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, `${JSON.stringify(f, replace, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    },
  };
}
