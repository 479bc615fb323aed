/**
 * "Share…" beside "Copy link": the system share sheet (Web Share API, `navigator.share`), offered
 * only where the browser has it (phones, some desktops; not Chromium on Linux). Closing the sheet
 * without sharing is no error (an `AbortError`); anything else is said, and Copy still works.
 */
import { Show } from "solid-js";
import type { AppModel } from "../app/model.ts";

export function ShareButton(props: { app: AppModel; title: string; url: () => string; testid: string }) {
  const canShare = () => typeof navigator.share === "function";
  const share = async () => {
    const data = { title: props.title, url: props.url() };
    if (navigator.canShare && !navigator.canShare(data)) {
      props.app.setNotice("This browser can't share this link: copy it instead.");
      return;
    }
    try {
      await navigator.share(data);
    } catch (e) {
      if ((e as Error).name !== "AbortError")
        props.app.setNotice("Sharing did not work here: copy the link instead.");
    }
  };
  return (
    <Show when={canShare() && props.url()}>
      <button type="button" data-testid={props.testid} onClick={() => void share()}>
        Share…
      </button>
    </Show>
  );
}
