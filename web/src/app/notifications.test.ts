import { describe, expect, it } from "vitest";
import { notificationContent } from "./notifications.ts";

const bob = { id: "ab".repeat(32), name: "Bob", request: false };

describe("notification content follows the setting", () => {
  it("shows the name and the message when on, folded to one line and cut", () => {
    const n = notificationContent("on", bob, "hello\n  there");
    expect(n).toEqual({ title: "Bob", body: "hello there", tag: `chat:${bob.id}`, path: `/chat/${bob.id}` });
    const long = notificationContent("on", bob, "x".repeat(500))!;
    expect(long.body.length).toBe(140);
    expect(long.body.endsWith("…")).toBe(true);
  });

  it("never shows the text when private", () => {
    expect(notificationContent("private", bob, "secret plans")!.body).toBe("New message");
  });

  it("shows nothing when off", () => {
    expect(notificationContent("off", bob, "hello")).toBeUndefined();
  });

  it("never shows a contact request's text and opens Home for it", () => {
    const n = notificationContent("on", { ...bob, request: true }, "buy my stuff")!;
    expect(n.body).not.toContain("buy");
    expect(n.path).toBe("/");
  });
});
