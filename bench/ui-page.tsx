/**
 * The page side of bench:ui (bench/ui.ts): the chat screen's real list — web/src/ui/chat/
 * MessageList.tsx rendering a timeline.ts store, followed to the bottom by follow.ts exactly as
 * Chat.tsx does — mounted with the app's stylesheet, plus two references measured in the same
 * page: the floor (a bare `appendChild` of the same bubble markup into the same chunk
 * containers), the same into one flat list (why the list is chunked), and the previous screen's
 * way (the whole history re-read and re-rendered on every message). Bundled by Vite with the Solid
 * plugin; driven through `window.loftBench`.
 */
import { createSignal, For } from "solid-js";
import { render } from "solid-js/web";
import type { StoredMessage } from "../web/src/engine/api.ts";
import { Bubble } from "../web/src/ui/chat/Bubble.tsx";
import { isAtBottom, scrollToBottom } from "../web/src/ui/chat/follow.ts";
import { MessageList } from "../web/src/ui/chat/MessageList.tsx";
import { CHUNK_SIZE, createTimeline, type Entry } from "../web/src/ui/chat/timeline.ts";

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
let seq = 0;

/** A plausible message: alternating sides, 20–160 characters, a link now and then. */
function message(i: number): StoredMessage {
  const out = i % 3 === 0;
  const words = 4 + ((i * 7) % 24);
  let text = Array.from({ length: words }, (_, w) => `word${(i + w) % 97}`).join(" ");
  if (i % 10 === 0) text += " https://example.org/page";
  return {
    id: `m${seq++}`,
    contactId: "c",
    direction: out ? "out" : "in",
    text,
    at: T0 + i * 60_000,
    state: out ? "delivered" : "received",
  };
}

/** Yield to the event loop (a new task, unclamped): engine events arrive as separate tasks. */
const nextTask = () =>
  new Promise<void>((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(0);
  });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

let dispose: (() => void) | undefined;
let count = 0;

function freshMain(): HTMLElement {
  dispose?.();
  dispose = undefined;
  document.body.replaceChildren();
  const main = document.createElement("main");
  main.className = "screen chat";
  document.body.append(main);
  window.scrollTo(0, 0);
  return main;
}

// ---- the chat screen's list ----------------------------------------------------------------------

let timeline = createTimeline();

function mountTimeline(n: number): void {
  const main = freshMain();
  timeline = createTimeline();
  const tl = timeline;
  dispose = render(
    () => <MessageList timeline={tl} label="Messages" contactOnline={() => true} onRetry={() => {}} />,
    main,
  );
  count = 0;
  tl.insertMany(Array.from({ length: n }, () => message(count++)));
  scrollToBottom();
}

/** What Chat.tsx does for one new message: follow if at the bottom, insert, scroll. */
function appendTimeline(): void {
  const follow = isAtBottom();
  timeline.insert(message(count++));
  if (follow) scrollToBottom();
}

// ---- the floor: the same bubble markup, appended by hand -------------------------------------------

let bareList: HTMLElement | undefined;
let bareTemplate: HTMLElement | undefined;
let bareChunked = true;
let bareTarget: HTMLElement | undefined;
let inChunk = 0;

/** `chunked`: the same chunk containers as the list (the floor); else one flat list. */
function mountBare(n: number, chunked: boolean): void {
  // The markup the list renders for one message, taken from a real bubble.
  mountTimeline(1);
  bareTemplate = document.querySelector<HTMLElement>("[data-testid=message]")!.cloneNode(true) as HTMLElement;
  const main = freshMain();
  bareList = document.createElement("div");
  bareList.className = "messages";
  bareList.setAttribute("role", "list");
  main.append(bareList);
  bareChunked = chunked;
  bareTarget = bareList;
  inChunk = 0;
  count = 0;
  for (let i = 0; i < n; i++) bareAppend(bareBubble(message(count++)));
  scrollToBottom();
}

function bareAppend(el: HTMLElement): void {
  if (bareChunked && (bareTarget === bareList || inChunk >= CHUNK_SIZE)) {
    bareTarget = document.createElement("div");
    bareTarget.className = "chunk";
    bareList!.append(bareTarget);
    inChunk = 0;
  }
  inChunk++;
  bareTarget!.append(el);
}

function bareBubble(m: StoredMessage): HTMLElement {
  const el = bareTemplate!.cloneNode(true) as HTMLElement;
  el.className = `msg ${m.direction}`;
  el.querySelector(".text")!.textContent = m.text;
  return el;
}

function appendBare(): void {
  const follow = isAtBottom();
  bareAppend(bareBubble(message(count++)));
  if (follow) scrollToBottom();
}

// ---- the previous screen: every event re-reads history and re-renders the list ---------------------

let history: StoredMessage[] = [];
const [rows, setRows] = createSignal<StoredMessage[]>([]);

function mountReload(n: number): void {
  const main = freshMain();
  count = 0;
  history = Array.from({ length: n }, () => message(count++));
  setRows(history.map((m) => ({ ...m })));
  dispose = render(
    () => (
      // biome-ignore lint/a11y/useSemanticElements: the same markup as MessageList.tsx
      <div role="list" class="messages">
        <For each={rows()}>
          {(m) => (
            <Bubble
              m={{ ...m, stored: true, dayStart: false } as Entry}
              contactOnline={() => true}
              onRetry={() => {}}
            />
          )}
        </For>
      </div>
    ),
    main,
  );
  scrollToBottom();
}

/** The old Chat.tsx: `refetch()` returned fresh objects for the last 500 rows; `<For>` rebuilt them. */
function appendReload(): void {
  history.push(message(count++));
  setRows(history.slice(-500).map((m) => ({ ...m })));
  document.querySelector(".messages")?.lastElementChild?.scrollIntoView({ block: "end" });
}

// ---- measurements -----------------------------------------------------------------------------------

type Kind = "timeline" | "bare" | "flat" | "reload";
const mounts: Record<Kind, (n: number) => void> = {
  timeline: mountTimeline,
  bare: (n) => mountBare(n, true),
  flat: (n) => mountBare(n, false),
  reload: mountReload,
};
const appends: Record<Kind, () => void> = {
  timeline: appendTimeline,
  bare: appendBare,
  flat: appendBare,
  reload: appendReload,
};

/** Appends timed together: performance.now() is coarse (0.1 ms) without cross-origin isolation. */
const BATCH = 20;

/**
 * Median ms to append one message to a list of `n` and lay the page out (style + layout), each
 * sample the mean of BATCH appends (each laid out before the next) in one task.
 */
async function appendCost(kind: Kind, n: number, samples: number): Promise<number> {
  mounts[kind](n);
  await nextTask();
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    for (let j = 0; j < BATCH; j++) {
      appends[kind]();
      void document.body.offsetHeight; // force style and layout inside the measurement
    }
    times.push((performance.now() - t0) / BATCH);
    await nextTask();
  }
  // A figure for bubbles nobody sees would be meaningless: the newest must be on screen.
  const bubbles = document.querySelectorAll("[data-testid=message]");
  const last = bubbles[bubbles.length - 1]!.getBoundingClientRect();
  if (last.bottom > window.innerHeight + 1 || last.bottom < 0)
    throw new Error(`${kind}/${n}: the newest bubble is off screen (${last.top}–${last.bottom})`);
  return median(times);
}

/**
 * `n` messages arriving one per task into a chat that already shows `start`: long tasks
 * (> 50 ms, PerformanceObserver "longtask") and the total time until the last one is laid out.
 */
async function burst(kind: Kind, start: number, n: number) {
  mounts[kind](start);
  await nextTask();
  const long: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) long.push(e.duration);
  });
  observer.observe({ type: "longtask" });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    appends[kind]();
    await nextTask();
  }
  void document.body.offsetHeight;
  const total = performance.now() - t0;
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  for (const e of observer.takeRecords()) long.push(e.duration);
  observer.disconnect();
  const bubbles = document.querySelectorAll("[data-testid=message]").length;
  return {
    long_tasks: long.length,
    longest_ms: long.length ? Math.max(...long) : 0,
    total_ms: total,
    bubbles,
  };
}

(window as unknown as { loftBench: unknown }).loftBench = { appendCost, burst };
document.title = "ready";
