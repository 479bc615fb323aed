/**
 * Where the "Call ended" notice goes (ui/call/CallScreen.tsx `Ended`): the open chat with the
 * contact of the call offers a place under its header (ui/Chat.tsx), in the flow, so the notice
 * covers neither the contact's name and status nor the trust badge; on any other screen it sits
 * in the flow above the screen.
 */
import { createSignal } from "solid-js";

export interface EndedSlot {
  contactId: string;
  el: HTMLElement;
}

const [slot, setSlot] = createSignal<EndedSlot>();

export const endedSlot = slot;

/** Offers `el` as the notice's place while the chat with `contactId` is open; returns the undo. */
export function offerEndedSlot(contactId: string, el: HTMLElement): () => void {
  const mine = { contactId, el };
  setSlot(mine);
  return () => setSlot((s) => (s === mine ? undefined : s));
}
