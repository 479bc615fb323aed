import { describe, expect, it } from "vitest";
import { createUserIdentity, type Identity, updateIdentity } from "./identity.ts";
import { type ContactIdentity, decideIdentity, type Trust, usernameKey, withTrust } from "./tofu.ts";

const T0 = 1_700_000_000_000;
const seed = (n: number) => new Uint8Array(32).fill(n);
const bob1 = createUserIdentity({ username: "bob", now: T0, seed: seed(2) });
const bob2 = updateIdentity(bob1, { username: "Bob" }, T0 + 10);
const bob3rotated = updateIdentity(bob2, { noiseSeed: seed(3) }, T0 + 20);
const bob2other = updateIdentity(bob1, { username: "Robert" }, T0 + 10); // also version 2
const impostor = createUserIdentity({ username: "bob", now: T0, seed: seed(66) });

const known = (identity: Identity, trust: Trust = "trusted"): ContactIdentity => ({
  identity,
  trust,
  firstSeen: T0,
  lastSeen: T0 + 1,
});

describe("decideIdentity (SREMP §identity TOFU)", () => {
  it("new contact: unknown trust, first and last seen now", () => {
    const d = decideIdentity({ offered: bob1.identity, known: undefined, now: T0 + 5 });
    expect(d.kind).toBe("new-contact");
    expect(d.action).toBe("accept");
    if (d.kind === "new-contact")
      expect(d.contact).toEqual({
        identity: bob1.identity,
        trust: "unknown",
        firstSeen: T0 + 5,
        lastSeen: T0 + 5,
      });
  });

  it("a new identity key using a known contact's username is surfaced, not silently added", () => {
    const d = decideIdentity({
      offered: impostor.identity,
      known: undefined,
      sameUsername: [known(bob1.identity)],
      now: T0 + 5,
    });
    expect(d.kind).toBe("username-collision");
    expect(d.action).toBe("ask");
    if (d.kind === "username-collision") {
      expect(d.sameUsername).toHaveLength(1);
      expect(d.contact.trust).toBe("unknown");
    }
  });

  it("unchanged: same version and data; only lastSeen moves (never backwards)", () => {
    const d = decideIdentity({ offered: bob1.identity, known: known(bob1.identity), now: T0 + 50 });
    expect(d.kind).toBe("unchanged");
    if (d.kind === "unchanged") expect(d.contact).toEqual({ ...known(bob1.identity), lastSeen: T0 + 50 });
    const early = decideIdentity({ offered: bob1.identity, known: known(bob1.identity), now: T0 - 99 });
    if (early.kind === "unchanged") expect(early.contact.lastSeen).toBe(T0 + 1);
  });

  it("newer version with the same noise key is accepted and keeps trust", () => {
    const d = decideIdentity({ offered: bob2.identity, known: known(bob1.identity), now: T0 + 50 });
    expect(d.kind).toBe("updated");
    expect(d.action).toBe("accept");
    if (d.kind === "updated") {
      expect(d.contact.identity).toBe(bob2.identity);
      expect(d.contact.trust).toBe("trusted");
      expect(d.contact.firstSeen).toBe(T0);
      expect(d.previous).toBe(bob1.identity);
    }
  });

  it("newer version with a rotated noise key must be surfaced (ask)", () => {
    const d = decideIdentity({ offered: bob3rotated.identity, known: known(bob2.identity), now: T0 + 50 });
    expect(d.kind).toBe("noise-key-rotated");
    expect(d.action).toBe("ask");
  });

  it("a lower version is a downgrade and refused", () => {
    const d = decideIdentity({ offered: bob1.identity, known: known(bob2.identity), now: T0 + 50 });
    expect(d.kind).toBe("downgrade");
    expect(d.action).toBe("refuse");
  });

  it("the same version with different data is a conflict and refused", () => {
    const d = decideIdentity({ offered: bob2other.identity, known: known(bob2.identity), now: T0 + 50 });
    expect(d.kind).toBe("conflict");
    expect(d.action).toBe("refuse");
  });

  it("a rejected contact is refused whatever it presents, newer versions included", () => {
    for (const offered of [bob1.identity, bob2.identity, bob3rotated.identity]) {
      const d = decideIdentity({ offered, known: known(bob2.identity, "rejected"), now: T0 + 50 });
      expect(d.kind).toBe("rejected");
      expect(d.action).toBe("refuse");
    }
  });

  it("every outcome is distinct (the table in identity.md)", () => {
    const kinds = new Set([
      decideIdentity({ offered: bob1.identity, known: undefined, now: T0 }).kind,
      decideIdentity({
        offered: impostor.identity,
        known: undefined,
        sameUsername: [known(bob1.identity)],
        now: T0,
      }).kind,
      decideIdentity({ offered: bob1.identity, known: known(bob1.identity), now: T0 }).kind,
      decideIdentity({ offered: bob2.identity, known: known(bob1.identity), now: T0 }).kind,
      decideIdentity({ offered: bob3rotated.identity, known: known(bob2.identity), now: T0 }).kind,
      decideIdentity({ offered: bob1.identity, known: known(bob2.identity), now: T0 }).kind,
      decideIdentity({ offered: bob2other.identity, known: known(bob2.identity), now: T0 }).kind,
      decideIdentity({ offered: bob1.identity, known: known(bob1.identity, "rejected"), now: T0 }).kind,
    ]);
    expect(kinds.size).toBe(8);
  });

  it("a known contact renaming itself to another contact's name is surfaced (ask), not updated", () => {
    const carol = createUserIdentity({ username: "Carol", now: T0, seed: seed(9) });
    const bobAsCarol = updateIdentity(bob1, { username: "Carol" }, T0 + 10);
    const d = decideIdentity({
      offered: bobAsCarol.identity,
      known: known(bob1.identity),
      sameUsername: [known(carol.identity)],
      now: T0 + 50,
    });
    expect(d.kind).toBe("rename-collision");
    expect(d.action).toBe("ask");
    if (d.kind === "rename-collision") {
      expect(d.previous).toEqual(bob1.identity);
      expect(d.sameUsername.map((c) => c.identity)).toEqual([carol.identity]);
      expect(d.contact.trust).toBe("trusted");
    }
    // Case and compatibility forms do not dodge the check ("carol", full-width letters).
    for (const name of ["carol", "ＣＡＲＯＬ"]) {
      const v = updateIdentity(bob1, { username: name }, T0 + 10);
      const r = decideIdentity({
        offered: v.identity,
        known: known(bob1.identity),
        sameUsername: [known(carol.identity)],
        now: T0 + 50,
      });
      expect(r.kind).toBe("rename-collision");
    }
    // Without a collision a rename is an update that says what the name was.
    const plain = decideIdentity({ offered: bob2other.identity, known: known(bob1.identity), now: T0 + 50 });
    expect(plain.kind).toBe("updated");
    if (plain.kind === "updated") expect(plain.renamedFrom).toBe("bob");
    const same = decideIdentity({
      offered: updateIdentity(bob1, { username: "bob" }, T0 + 10).identity,
      known: known(bob1.identity),
      sameUsername: [known(carol.identity)],
      now: T0 + 50,
    });
    if (same.kind === "updated") expect(same.renamedFrom).toBeNull();
    // A rename with a rotated noise key is still the noise-key question, and names the collision.
    const both = updateIdentity(bobAsCarol, { noiseSeed: seed(4) }, T0 + 20);
    const r = decideIdentity({
      offered: both.identity,
      known: known(bob1.identity),
      sameUsername: [known(carol.identity)],
      now: T0 + 50,
    });
    expect(r.kind).toBe("noise-key-rotated");
    if (r.kind === "noise-key-rotated") {
      expect(r.renamedFrom).toBe("bob");
      expect(r.sameUsername).toHaveLength(1);
    }
  });

  it("usernameKey folds case and compatibility forms", () => {
    expect(usernameKey("ＣＡＲＯＬ")).toBe(usernameKey("carol"));
    expect(usernameKey("Bob")).not.toBe(usernameKey("Rob"));
  });

  it("a record of another key passed as `known` is a programming error", () => {
    expect(() =>
      decideIdentity({ offered: impostor.identity, known: known(bob1.identity), now: T0 }),
    ).toThrow(RangeError);
  });

  it("withTrust returns a new record", () => {
    const c = known(bob1.identity, "unknown");
    const t = withTrust(c, "trusted");
    expect(t.trust).toBe("trusted");
    expect(c.trust).toBe("unknown");
  });
});
