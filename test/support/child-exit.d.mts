import type { ChildProcess } from "node:child_process";

/** How a child process ended (child-exit.mjs): its exit, or the error that kept it from starting. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The spawn failed (no such command): there was no process, so no exit. */
  error?: Error;
}

export function exitedAndDrained(child: ChildProcess, drainMs: number): Promise<ChildEnd>;
