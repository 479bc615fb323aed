/**
 * Failures in words (problems.ts): raw storage errors become a sentence naming what could not be
 * done and why; errors already written for people pass through unchanged.
 */
import { describe, expect, it } from "vitest";
import { BackupError } from "../storage/backup.ts";
import { WrongPassphraseError } from "../storage/vault.ts";
import { ActionFailed, attempt, problemText, storageProblem } from "./problems.ts";

describe("storage failures in words", () => {
  it("names full storage and undecryptable data, and otherwise keeps the browser's message", () => {
    expect(storageProblem(new DOMException("", "QuotaExceededError"))).toContain("no storage space");
    expect(storageProblem(new DOMException("", "OperationError"))).toContain("could not be decrypted");
    expect(storageProblem(new Error("The database connection is closing"))).toBe(
      "The database connection is closing.",
    );
    expect(storageProblem(new Error(""))).toBe("the browser's storage refused the change.");
  });
});

describe("app actions that fail", () => {
  it("say what could not be done, why, and (for all-or-nothing actions) that nothing changed", async () => {
    const quota = () => Promise.reject(new DOMException("", "QuotaExceededError"));
    const e = await attempt("save the servers", quota).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ActionFailed);
    expect((e as ActionFailed).message).toBe(
      "Could not save the servers: this browser has no storage space left for Loft. Nothing was changed.",
    );
    expect((e as ActionFailed).cause).toBeInstanceOf(DOMException);
    const read = await attempt("read the settings", quota, false).catch((x: unknown) => x);
    expect((read as Error).message).toBe(
      "Could not read the settings: this browser has no storage space left for Loft.",
    );
    expect(await attempt("save", async () => 7)).toBe(7);
  });

  it("let errors written for people through as they are", async () => {
    for (const x of [new BackupError("This backup file is damaged."), new WrongPassphraseError()]) {
      expect(await attempt("restore", () => Promise.reject(x)).catch((y: unknown) => y)).toBe(x);
      expect(problemText(x, "restore")).toBe(x.message);
    }
    expect(problemText(new TypeError("Failed to fetch"), "unlock")).toBe(
      "Could not unlock: Failed to fetch.",
    );
  });
});
