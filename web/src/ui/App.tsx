/** The shell: picks the screen from the app phase and route; update banner and notices on top. */
import { Match, Show, Switch } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { applyUpdate, updateReady } from "../sw-client.ts";
import { Chat } from "./Chat.tsx";
import { ContactScreen, SafetyScreen } from "./Contact.tsx";
import { AddContact, Home, MyLink } from "./Home.tsx";
import { Onboarding, Unlock } from "./Onboarding.tsx";
import { Settings } from "./Settings.tsx";

export function App(props: { app: AppModel; fatal?: string }) {
  const app = props.app;
  const r = app.route;
  return (
    <>
      <Show when={updateReady()}>
        <div class="banner" role="status" data-testid="update-banner">
          Update available —{" "}
          <button type="button" class="link" data-testid="update-reload" onClick={applyUpdate}>
            reload
          </button>
        </div>
      </Show>
      <Show when={app.notice()}>
        <div class="notice" role="status" data-testid="notice">
          {app.notice()}{" "}
          <button type="button" class="link" aria-label="Dismiss" onClick={() => app.setNotice(undefined)}>
            ✕
          </button>
        </div>
      </Show>
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
        <Match when={app.phase() === "ready"}>
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
            <Match when={r().name === "settings"}>
              <Settings app={app} />
            </Match>
          </Switch>
        </Match>
      </Switch>
    </>
  );
}
