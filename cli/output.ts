/**
 * What `loft listen`, `loft contacts` and `loft expose` print: one line per thing, for a person or
 * (`--json`) one JSON object per line for a program (docs/user-guide.md "The command line"). A
 * contact's text is printed as it came, but control characters are shown escaped in the human form
 * so a message cannot move the cursor or rewrite the terminal.
 */
import type { AccessRecord } from "../core/proxy/server.ts";
import type { ContactRecord, StoredMessage } from "../web/src/engine/api.ts";

/** Control characters (C0, DEL, C1) as `\u{…}`; newlines kept as `\n`. */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === "\n" ? "\\n" : `\\u{${c.charCodeAt(0).toString(16)}}`,
  );
}

export function messageLine(m: StoredMessage, name: string | undefined, json: boolean): string {
  if (json)
    return JSON.stringify({
      type: "message",
      id: m.id,
      from: m.contactId,
      name: name ?? null,
      text: m.text,
      at: m.at,
      ...(m.sentAt !== undefined ? { sentAt: m.sentAt } : {}),
    });
  const time = new Date(m.at).toISOString().slice(11, 19);
  return `${time} ${printable(name ?? m.contactId.slice(0, 8))}: ${printable(m.text)}`;
}

export function requestLine(c: ContactRecord, json: boolean): string {
  if (json) return JSON.stringify({ type: "request", from: c.id, name: c.username });
  return `contact request from ${printable(c.username)} (${c.id}): \`loft accept ${c.id.slice(0, 12)}\``;
}

export function contactLine(c: ContactRecord, json: boolean): string {
  const state = c.request ? "request" : c.pending ? "identity-change" : c.trust;
  if (json) return JSON.stringify({ type: "contact", id: c.id, name: c.username, state });
  return `${c.id}  ${printable(c.username)}  ${state}`;
}

export function accessLine(r: AccessRecord, name: string | undefined, json: boolean): string {
  if (json) return JSON.stringify({ type: "access", ...r, name: name ?? null });
  const what =
    r.outcome === "served"
      ? `${r.status ?? ""} ${r.bytes} B`
      : `${r.outcome}${r.refused ? ` ${r.refused}` : ""}`;
  return `${new Date(r.at).toISOString().slice(11, 19)} ${printable(name ?? r.peer.slice(0, 8))} ${r.method} ${printable(r.path)} ${what}`;
}
