/**
 * The CLI's identity file and its first commands, run as a real process (`tsx cli/main.ts`):
 * `loft id --name` creates a sealed identity, `loft id` opens it again, `loft link` prints a contact
 * link the app's own parser reads back to that identity; a wrong passphrase, a tampered file, a
 * weakened KDF or a missing passphrase each fail with a clear message and lose nothing; the
 * passphrase may come from another variable, `--passphrase-env VAR` (an environment secret).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { parseContactLinkUrl } from "../core/identity/contact-link.ts";
import { createIdentityFile, IdentityFileError, openIdentityFile } from "./identity-file.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PASS = "seven unrelated words make a passphrase";

function loft(args: string[], env: Record<string, string> = { LOFT_PASSPHRASE: PASS }) {
  return new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "cli/main.ts", ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env } },
      (e, out, err) => resolve({ code: e ? (e.code as number) : 0, out, err }),
    );
  });
}

describe("loft id / loft link (the CLI's sealed identity file)", () => {
  let dir: string;
  let file: string;
  let id: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loft-cli-"));
    file = join(dir, "me.json");
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("creates an identity sealed with the passphrase (mode 0600), opens it again, never replaces it", async () => {
    const made = await loft(["id", "--identity", file, "--name", "botty"]);
    expect(made.err).toBe("");
    expect(made.code).toBe(0);
    id = made.out.trim().split(/\s+/)[0] ?? "";
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(made.out).toContain("botty");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain("botty"); // sealed: not even the name shows
    const again = await loft(["id", "--identity", file]);
    expect(again.out.trim().split(/\s+/)[0]).toBe(id);
    const twice = await loft(["id", "--identity", file, "--name", "other"]);
    expect(twice.code).toBe(1);
    expect(twice.err).toContain("already holds an identity");
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("prints a contact link the app reads back to this identity and this server", async () => {
    // No server answers there: the link comes without a contact address, and says so.
    const r = await loft(
      ["link", "--identity", file, "--server", "https://loft.example.com", "--timeout", "1"],
      {
        LOFT_PASSPHRASE: PASS,
        LOFT_RESOLVE: "loft.example.com=127.0.0.1",
      },
    );
    expect(r.err).toContain("no contact address");
    expect(r.code).toBe(0);
    const link = await parseContactLinkUrl(nobleCrypto, r.out.trim());
    expect(link.ok).toBe(true);
    if (!link.ok) return;
    expect(toHex(link.value.identity.verified.identity_key)).toBe(id);
    expect(link.value.signaling).toEqual(["wss://loft.example.com/signal"]);
    expect(link.value.relay).toEqual(["wss://loft.example.com/relay"]);
  });

  it("refuses a wrong or missing passphrase, a tampered file and a weakened KDF, with words", async () => {
    const wrong = await loft(["id", "--identity", file], { LOFT_PASSPHRASE: "not it" });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("the passphrase does not open this identity file");
    const none = await loft(["id", "--identity", file], {});
    expect(none.code).toBe(1);
    expect(none.err).toContain("LOFT_PASSPHRASE");
    const missing = await loft(["id", "--identity", join(dir, "nope.json")]);
    expect(missing.err).toContain("no identity file");

    const original = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    const tampered = join(dir, "tampered.json");
    const ct = String(original.ct);
    await writeFile(
      tampered,
      JSON.stringify({ ...original, ct: `${ct.slice(0, 10)}${ct[10] === "A" ? "B" : "A"}${ct.slice(11)}` }),
    );
    await expect(openIdentityFile(tampered, PASS)).rejects.toMatchObject({ code: "wrong_passphrase" });
    // Lower KDF cost than the file was sealed with: the parameters are bound, it does not open.
    const weaker = join(dir, "weaker.json");
    await writeFile(weaker, JSON.stringify({ ...original, t: Number(original.t) + 1 }));
    await expect(openIdentityFile(weaker, PASS)).rejects.toBeInstanceOf(IdentityFileError);
    for (const junk of ["", "{}", "[1]", '{"v":1,"kind":"loft-identity"}', "not json"]) {
      const f = join(dir, "junk.json");
      await writeFile(f, junk);
      await expect(openIdentityFile(f, PASS), junk).rejects.toMatchObject({ code: "malformed" });
    }
  });

  it("takes its passphrase from the environment variable --passphrase-env names (a secret the service manager sets)", async () => {
    const secret = join(dir, "from-env.json");
    const made = await loft(
      ["id", "--identity", secret, "--name", "envbot", "--passphrase-env", "BOT_SECRET"],
      {
        BOT_SECRET: PASS,
      },
    );
    expect(made.err).toBe("");
    expect(made.code).toBe(0);
    const madeId = made.out.trim().split(/\s+/)[0];
    const again = await loft(["id", "--identity", secret, "--passphrase-env", "BOT_SECRET"], {
      BOT_SECRET: PASS,
    });
    expect(again.out.trim().split(/\s+/)[0]).toBe(madeId);
    // The variable named and nothing else: LOFT_PASSPHRASE is not read in its place.
    const unset = await loft(["id", "--identity", secret, "--passphrase-env", "BOT_SECRET"]);
    expect(unset.code).toBe(1);
    expect(unset.err).toContain("$BOT_SECRET");
    const other = await loft(["id", "--identity", secret, "--passphrase-env", "BOT_SECRET"], {
      BOT_SECRET: "not it",
      LOFT_PASSPHRASE: PASS,
    });
    expect(other.code).toBe(1);
    expect(other.err).toContain("the passphrase does not open this identity file");
    // The same sealed file as with LOFT_PASSPHRASE: the passphrase opens it whichever variable held it.
    expect(toHex((await openIdentityFile(secret, PASS)).identity.verified.identity_key)).toBe(madeId);
  });

  it("refuses a weak passphrase for a new identity, and says why", async () => {
    const weak = join(dir, "weak.json");
    const r = await loft(["id", "--identity", weak, "--name", "weak"], { LOFT_PASSPHRASE: "password1" });
    expect(r.code).toBe(1);
    expect(r.err).toContain("too weak");
    for (const pass of ["qwerty12", "aaaaaaaaaaaaaaaa", "letmein"])
      await expect(createIdentityFile(weak, "weak", pass), pass).rejects.toMatchObject({
        code: "weak_passphrase",
      });
    await expect(stat(weak)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("says what is wrong with a command: unknown contact, missing arguments, unknown options", async () => {
    const unknown = await loft(["send", "nobody", "hi", "--identity", file]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no contact "nobody"');
    const noTo = await loft(["expose", "http://127.0.0.1:8000", "--identity", file]);
    expect(noTo.code).toBe(1);
    expect(noTo.err).toContain("--to");
    const option = await loft(["listen", "--jsn"]);
    expect(option.code).toBe(1);
    expect(option.err).toContain("unknown option --jsn");
  });
});
