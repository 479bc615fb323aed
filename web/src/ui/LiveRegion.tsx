/**
 * A live region drawn with its screen, empty, whose words come and go inside it: a screen reader
 * announces a live region's changes, not what a region inserted already filled holds. A status
 * that may appear while a screen stays open goes in one (App.tsx's notice, WaitingForOtherTab.tsx,
 * Settings.tsx's outcomes, Room.tsx, call/RoomCallPanel.tsx, Share.tsx), as Chat.tsx's
 * `chat-announcer` and PairDevice.tsx's step status are. `role` gives the region its politeness
 * and makes it atomic (WAI-ARIA: status is polite, alert assertive, both read whole); an alert
 * inserted filled is announced as well, which the screens' other alerts rely on.
 *
 * `testid` names the region (in the page from the start, empty until `when`); the words keep
 * their own element and test id, present only while shown.
 */
import { type JSX, Show } from "solid-js";

export function LiveRegion(props: {
  /** Whether the words show (read once per change). */
  when: boolean;
  /** The region's test id. */
  testid: string;
  /** "alert" for a problem (assertive), "status" (polite) otherwise. */
  role?: "status" | "alert";
  /** The region's own class: what places its words on the screen (App.tsx's sticky notice). */
  class?: string;
  children: JSX.Element;
}) {
  return (
    <div role={props.role ?? "status"} class={props.class} data-testid={props.testid}>
      <Show when={props.when}>{props.children}</Show>
    </div>
  );
}
