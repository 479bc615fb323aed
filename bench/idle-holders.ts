/**
 * Starting bench/idle-holder.ts children, for bench/scale.ts and bench/idle-census.ts: each holds
 * the idle connections of its plan, says so on stdout, and holds them until its stdin closes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Plan } from "./idle-holder.ts";

/** What a holder said once every connection of its plan was tried. */
export interface Held {
  held: number;
  failed: number;
}

/**
 * One holder child for `plan`; `done` resolves with its counts once it has opened what it could,
 * and rejects if it exits first. The caller ends its stdin (and kills it) when done with it.
 */
export function spawnIdleHolder(plan: Plan): { child: ChildProcess; done: Promise<Held> } {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("./idle-holder.ts", import.meta.url)), JSON.stringify(plan)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const done = new Promise<Held>((resolve, reject) => {
    let pending = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const r = JSON.parse(line) as Held & { done?: boolean };
        if (r.done) resolve(r);
      }
    });
    child.once("exit", (code) => reject(new Error(`idle holder exited (${code})`)));
  });
  return { child, done };
}

/** signaling/main.ts's connection limits lifted so that one machine holds `count` idle connections. */
export function liftedSignalingArgs(count: number): string[] {
  return [
    "--signal-max-connections",
    String(count + 1000),
    "--signal-max-connections-per-source",
    "100000",
    "--signal-upgrade-rate",
    "1000000",
    "--signal-upgrade-burst",
    "1000000",
  ];
}
