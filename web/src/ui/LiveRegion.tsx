/**
 * A live region drawn with its screen, empty, whose words come and go inside it: a screen reader
 * announces a live region's changes, not what a region inserted already filled holds. A status
 * that may appear while a screen stays open goes in one (App.tsx's notice, WaitingForOtherTab.tsx,
 * Settings.tsx's outcomes, Room.tsx, call/RoomCallPanel.tsx, Share.tsx), as Chat.tsx's
 * `chat-announcer` and PairDevice.tsx's step status are. `role` gives the region its politeness
 * and makes it atomic (WAI-ARIA: status is polite, alert assertive, both read whole); an alert
 * inserted filled is announced as well, which the screens' other alerts rely on.
 *
 * `testid` names the region (in the page from the start, empty until there are words); the words
 * keep their own element and test id, present only while shown.
 *
 * The same words said again (a second identical failure) leave the region's DOM as it was, and
 * nothing is announced: a message that must be read each time it is said passes `news`, an object
 * new each time it is said, and its words are drawn anew in a fresh element — an addition, which
 * the region announces whatever its text. Only the words: a button drawn anew with them loses the
 * focus a keyboard user had on it, so words beside controls are keyed on their own inside the
 * region, the controls kept (App.tsx's notice: an addition anywhere in the region is announced).
 */
import { type JSX, Show } from "solid-js";

export function LiveRegion(props: {
  /**
   * Whether the words show (read once per change). Left out when the children show or not by
   * themselves (each in its own `Show`, a `For` over a list that may be empty).
   */
  when?: boolean;
  /**
   * What is said, each time it is said: the words drawn anew whenever it changes (compared by
   * identity), none while it is undefined. An object, never a counter: the region's `Show` takes
   * a falsy value for nothing said, so a count at 0 would draw no words.
   */
  news?: object;
  /** The region's test id. */
  testid: string;
  /** "alert" for a problem (assertive), "status" (polite) otherwise. */
  role?: "status" | "alert";
  /** The region's own class: what places its words on the screen (App.tsx's sticky notice). */
  class?: string;
  children: JSX.Element;
}) {
  // Keyed on `news` (or on `true` when it is left out): a new value is a new element.
  const shown = () => props.when !== false && ("news" in props ? props.news : true);
  return (
    <div role={props.role ?? "status"} class={props.class} data-testid={props.testid}>
      <Show when={shown()} keyed>
        {props.children}
      </Show>
    </div>
  );
}
