/**
 * Where the chat view is scrolled, and when it follows new messages. The page itself scrolls
 * (the header and the composer are sticky), so the bottom of the page is "the newest message,
 * fully visible above the composer": the composer is the last thing in the flow, never on top
 * of a message at the bottom. The view follows new content only while the reader is at the
 * bottom; a reader who scrolled up stays where they are (the screen shows a pill instead).
 */

/** Within this many pixels of the bottom counts as "at the bottom". */
const BOTTOM_SLACK_PX = 48;

function scroller(): HTMLElement {
  return document.scrollingElement as HTMLElement;
}

export function distanceFromBottom(): number {
  const s = scroller();
  return s.scrollHeight - s.scrollTop - s.clientHeight;
}

export function isAtBottom(): boolean {
  return distanceFromBottom() <= BOTTOM_SLACK_PX;
}

export function scrollToBottom(): void {
  const s = scroller();
  s.scrollTop = s.scrollHeight;
}

export function scrollTop(): number {
  return scroller().scrollTop;
}

/**
 * Run `change` (which adds content above the viewport) and shift the scroll position by the
 * height it added, so what the reader was looking at stays in place.
 */
export function keepPosition(change: () => void): void {
  const s = scroller();
  const height = s.scrollHeight;
  const top = s.scrollTop;
  change();
  s.scrollTop = top + (s.scrollHeight - height);
}

/**
 * Track whether the reader is at the bottom (`onBottom` on every change), and keep them there
 * when content under them grows (a bubble's state line wraps, the composer grows, the keyboard
 * opens). Returns the stop function.
 */
export function followBottom(list: HTMLElement, onBottom: (atBottom: boolean) => void): () => void {
  let stick = isAtBottom();
  const onScroll = () => {
    const now = isAtBottom();
    if (now !== stick) {
      stick = now;
      onBottom(now);
    }
  };
  const resized = new ResizeObserver(() => {
    if (stick) scrollToBottom();
  });
  resized.observe(list);
  const onResize = () => {
    if (stick) scrollToBottom();
  };
  window.addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onResize);
  return () => {
    resized.disconnect();
    window.removeEventListener("scroll", onScroll);
    window.removeEventListener("resize", onResize);
  };
}
