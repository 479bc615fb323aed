import { describe, expect, it } from "vitest";
import { callNotificationContent, notificationContent } from "./notifications.ts";

const bob = { id: "ab".repeat(32), name: "Bob", request: false };

describe("notification content follows the setting", () => {
  it("shows the name and the message when on, folded to one line and cut", () => {
    const n = notificationContent("on", bob, "hello\n  there");
    expect(n).toEqual({ title: "Bob", body: "hello there", tag: `chat:${bob.id}`, path: `/chat#${bob.id}` });
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

describe("an incoming call's notification follows the setting", () => {
  const from = { id: "ab".repeat(32), name: "Alice" };
  it("says who calls and how, one per contact, opening their chat", () => {
    expect(callNotificationContent("on", from, true)).toEqual({
      title: "Alice",
      body: "Incoming video call",
      tag: `call:${from.id}`,
      path: `/chat#${from.id}`,
    });
    expect(callNotificationContent("on", from, false)?.body).toBe("Incoming voice call");
  });
  it("says only that someone calls when private, and nothing when off", () => {
    expect(callNotificationContent("private", from, true)?.body).toBe("Incoming call");
    expect(callNotificationContent("off", from, false)).toBeUndefined();
  });
});
