/**
 * The shell: picks the screen from the app phase and route; update banner and notices on top;
 * moves the keyboard focus to each new screen (WAI-ARIA APG: after a view change, focus its
 * heading or first control) so keyboard and screen-reader users land on what changed.
 */
import { createEffect, Match, on, onCleanup, onMount, Show, Switch } from "solid-js";
import { unsavedMessages } from "../app/conversation.ts";
import type { AppModel } from "../app/model.ts";
import { type Route, routeContact, routePath } from "../app/routes.ts";
import { UpdateBanner } from "../update/UpdateBanner.tsx";
import { Chat } from "./Chat.tsx";
import { ContactScreen, SafetyScreen } from "./Contact.tsx";
import { CallScreen } from "./call/CallScreen.tsx";
import { DeviceScreen } from "./DeviceScreen.tsx";
import { focusScreen } from "./focus.ts";
import { AddContact, Home, MyLink } from "./Home.tsx";
import { LiveRegion } from "./LiveRegion.tsx";
import { Onboarding, Unlock } from "./Onboarding.tsx";
import { PairDevice } from "./PairDevice.tsx";
import { NewRoom, RoomScreen } from "./Room.tsx";
import { Settings } from "./Settings.tsx";
import { Share } from "./Share.tsx";
import { TabClosed } from "./TabClosed.tsx";

export function App(props: { app: AppModel; fatal?: string }) {
  const app = props.app;
  const r = app.route;
  // On the way back to Home, the focus returns to the conversation the person came from.
  let previous: Route | undefined;
  createEffect(
    on([app.phase, () => routePath(r())], () => {
      const from = previous;
      previous = r();
      // The route, not its address: a contact's id is in the fragment (app/routes.ts).
      const id = from && routeContact(from);
      queueMicrotask(() => focusScreen(r().name === "home" && id ? `[data-contact-id="${id}"]` : undefined));
    }),
  );
  // The leave warning, for the whole app (one listener, whatever the screen: a message sent and
  // then Back to Home is as unsaved as on the chat screen). Only when leaving would really lose a
  // message — one neither journaled nor stored yet (conversation.ts `unsavedMessages`); a
  // journaled one is replayed at the next start (docs/protocol/chat.md §9, "The outbox journal").
  onMount(() => {
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      if (unsavedMessages(app) > 0) e.preventDefault();
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    onCleanup(() => window.removeEventListener("beforeunload", onBeforeUnload));
  });
  return (
    <>
      <UpdateBanner />
      {/* Drawn with the app, empty: a notice that comes into it is announced (LiveRegion.tsx). Its
          words are drawn anew each time one is set (AppModel `noticeSaid`), the same words again
          too: an addition into the region, announced whole. Not the notice's buttons: drawn anew,
          a focused Dismiss or "Open the chat" went with the focus, which fell to the page. */}
      <LiveRegion when={app.noticeSaid() !== undefined} class="notice-region" testid="notice-news">
        <div class="notice" data-testid="notice">
          <Show when={app.noticeSaid()} keyed>
            <span>{app.notice()}</span>
          </Show>{" "}
          <Show when={app.noticeChat()}>
            {(chat) => (
              <>
                <button
                  type="button"
                  class="link"
                  data-testid="notice-open-chat"
                  onClick={() => app.go({ name: "chat", id: chat().id })}
                >
                  {chat().label}
                </button>{" "}
              </>
            )}
          </Show>
          <button type="button" class="link" aria-label="Dismiss" onClick={() => app.setNotice(undefined)}>
            ✕
          </button>
        </div>
      </LiveRegion>
      <Switch>
        <Match when={app.phase() === "loading"}>
          <main class="screen" data-testid="loading" aria-busy="true">
            <p>Opening Loft…</p>
          </main>
        </Match>
        <Match when={app.phase() === "onboarding"}>
          <Onboarding app={app} />
        </Match>
        <Match when={app.phase() === "locked"}>
          <Unlock app={app} />
        </Match>
        <Match when={app.phase() === "closed"}>
          <TabClosed app={app} />
        </Match>
        <Match when={app.phase() === "ready"}>
          <CallScreen app={app} />
          <Switch>
            <Match when={r().name === "home"}>
              <Home app={app} />
            </Match>
            <Match when={r().name === "my-link"}>
              <MyLink app={app} />
            </Match>
            <Match when={r().name === "add" && r()} keyed>
              {(route) => <AddContact app={app} text={(route as { text?: string }).text} />}
            </Match>
            <Match when={r().name === "contact" && r()} keyed>
              {(route) => <ContactScreen app={app} id={(route as { id: string }).id} />}
            </Match>
            <Match when={r().name === "safety" && r()} keyed>
              {(route) => <SafetyScreen app={app} id={(route as { id: string }).id} />}
            </Match>
            <Match when={r().name === "chat" && r()} keyed>
              {(route) => <Chat app={app} id={(route as { id: string }).id} />}
            </Match>
            <Match when={r().name === "share"}>
              <Share app={app} />
            </Match>
            <Match when={r().name === "settings"}>
              <Settings app={app} />
            </Match>
            <Match when={r().name === "new-room"}>
              <NewRoom app={app} />
            </Match>
            <Match when={r().name === "room" && r()} keyed>
              {(route) => <RoomScreen app={app} id={(route as { room: string }).room} />}
            </Match>
            <Match when={r().name === "pair-device"}>
              <PairDevice app={app} />
            </Match>
            <Match when={r().name === "device" && r()} keyed>
              {(route) => <DeviceScreen app={app} id={(route as { id: string }).id} />}
            </Match>
          </Switch>
        </Match>
      </Switch>
    </>
  );
}
