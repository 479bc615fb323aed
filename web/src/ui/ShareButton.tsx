/**
 * The ways a link leaves its screen (my contact link, a new room's link, a room's invite):
 * **Copy link**, and **Share…** beside it, the system share sheet (Web Share API,
 * `navigator.share`), offered only where the browser has it (phones, some desktops; not Chromium on
 * Linux). Where copying is not allowed, the person is told to copy the link by hand. Closing the
 * sheet without sharing is no error (an `AbortError`); anything else is said, and Copy still works.
 */
import { createSignal, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";

/** Copy link (saying "Copied" once done) and, where the browser has one, Share…; placed in a `.row`. */
export function LinkButtons(props: {
  app: AppModel;
  title: string;
  url: () => string;
  copyTestid: string;
  shareTestid: string;
}) {
  const [copied, setCopied] = createSignal(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.url());
      setCopied(true);
    } catch {
      props.app.setNotice("Copying is not allowed here: select the link and copy it yourself.");
    }
  };
  return (
    <>
      <button type="button" class="primary" data-testid={props.copyTestid} onClick={copy}>
        {copied() ? "Copied" : "Copy link"}
      </button>
      <ShareButton app={props.app} title={props.title} url={props.url} testid={props.shareTestid} />
    </>
  );
}

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
