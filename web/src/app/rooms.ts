/**
 * Rooms for the screens (docs/user-guide.md "Rooms"): signals over the engine's rooms
 * (web/src/engine/rooms/api.ts), re-read on each room event, attached again whenever the engine
 * restarts. Screens call these functions; errors thrown are written for people.
 */
import { type Accessor, createEffect, createRoot, createSignal } from "solid-js";
import type { RoomMessageView, RoomsApi, RoomView } from "../engine/rooms/api.ts";
import { forgetDraft } from "./drafts.ts";
import type { AppModel } from "./model.ts";

/** Longest room name (the screens bound their field with it). */
export { MAX_ROOM_NAME_CHARS } from "../engine/local-notes.ts";

/** Why this tab has no rooms (its engine runs in another): the room screen and refused requests say it alike. */
export const ELSEWHERE =
  "Loft is open in another tab or window: rooms work there. Use that tab, or close it and reload this one.";
/** How long a screen's request waits for the engine to start. */
const READY_WAIT_MS = 120_000;

export class RoomsModel {
  readonly #app: AppModel;
  readonly rooms: Accessor<RoomView[]>;
  readonly #setRooms: (v: RoomView[]) => void;
  /** Bumped on every room event: screens reading one room's messages track it. */
  readonly version: Accessor<number>;
  readonly #setVersion: (f: (n: number) => number) => void;
  #api: RoomsApi | undefined;
  /** The api whose rooms are loaded from storage: before that, "no such room" is not known yet. */
  #loaded: RoomsApi | undefined;
  #off: (() => void) | undefined;
  readonly #waiters = new Set<(api: RoomsApi | undefined) => void>();

  constructor(app: AppModel) {
    this.#app = app;
    [this.rooms, this.#setRooms] = createSignal<RoomView[]>([]);
    [this.version, this.#setVersion] = createSignal(0);
    // `service` is set each time an engine starts: the moment to (re)attach.
    createEffect(() => {
      app.service();
      app.phase();
      this.#attach(app.engine?.rooms);
    });
  }

  /** Whether rooms work in this tab (they need the engine this tab runs). */
  available(): boolean {
    return this.#api !== undefined;
  }

  /** Whether this tab's rooms are loaded (tracked through `version`): a room missing then is not there. */
  loaded(): boolean {
    this.version();
    return this.#api !== undefined && this.#loaded === this.#api;
  }

  room(id: string): RoomView | undefined {
    this.version();
    return this.#api?.room(id);
  }

  messages(id: string): RoomMessageView[] {
    this.version();
    return this.#api?.messages(id) ?? [];
  }

  /** The full link of a room, on this app's origin. */
  linkOf(room: RoomView): string {
    return `${location.origin}/#${room.fragment}`;
  }

  async create(): Promise<RoomView> {
    return (await this.#ready()).create();
  }

  /**
   * The "New room" screen's room: the one it made before when `made` names a room still here (the
   * screen again by Back/Forward or a reload: no second room), else a new one.
   */
  async createOnce(made: string | undefined): Promise<RoomView> {
    const api = await this.#ready();
    if (made !== undefined) {
      await api.load();
      const kept = api.room(made);
      if (kept) return kept;
    }
    return api.create();
  }

  async join(linkText: string): Promise<RoomView> {
    return (await this.#ready()).join(linkText);
  }

  /** The rooms API once the engine runs (it may still be starting when a screen asks). */
  #ready(): Promise<RoomsApi> {
    this.#catchUp();
    if (this.#api) return Promise.resolve(this.#api);
    if (this.#app.engine) return Promise.reject(new Error(ELSEWHERE));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error("Loft is still starting. Try again in a moment."));
      }, READY_WAIT_MS);
      const waiter = (api: RoomsApi | undefined) => {
        clearTimeout(timer);
        if (api) resolve(api);
        else reject(new Error(ELSEWHERE));
      };
      this.#waiters.add(waiter);
    });
  }

  async leave(id: string): Promise<void> {
    await this.#need().leave(id);
    // Its stored draft went with the room (engine/rooms/store.ts `forget`); this one is in memory.
    await forgetDraft(`room:${id}`);
  }

  /** Returns an error to show, or undefined once handed over. */
  send(id: string, text: string): string | undefined {
    try {
      this.#need().send(id, text);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  markRead(id: string): void {
    this.#api?.markRead(id);
  }

  /** Host only: remove a member (the room secret changes; its link no longer admits it). */
  async remove(id: string, memberKey: string): Promise<void> {
    await this.#need().remove(id, memberKey);
  }

  /** Host only: hand the host role to a connected member. */
  async handOver(id: string, memberKey: string): Promise<void> {
    await this.#need().handOver(id, memberKey);
  }

  /** Name the room on this device only (docs/user-guide.md "Rooms"); empty removes the name. */
  async rename(id: string, name: string): Promise<void> {
    await this.#need().rename(id, name);
  }

  /** Mark a member verified after comparing safety codes. */
  verify(id: string, memberKey: string, verified: boolean): void {
    this.#need().verify(id, memberKey, verified);
  }

  #need(): RoomsApi {
    this.#catchUp();
    if (!this.#api)
      throw new Error(this.#app.engine ? ELSEWHERE : "Loft is still starting. Try again in a moment.");
    return this.#api;
  }

  /**
   * The engine may run before this model's effect first ran: a model made inside another effect
   * (main.tsx joining a room link on a fresh page load) has its own effect queued until that one
   * ends, and a request made meanwhile would be told rooms run elsewhere. Attach at once instead.
   */
  #catchUp(): void {
    const api = this.#app.engine?.rooms;
    if (!this.#api && api) this.#attach(api);
  }

  #attach(api: RoomsApi | undefined): void {
    // An engine is up (a real one with rooms, or the offline one without): waiting screens learn which.
    if (api || this.#app.engine) {
      for (const w of this.#waiters) w(api);
      this.#waiters.clear();
    }
    if (api === this.#api) return;
    this.#off?.();
    this.#off = undefined;
    this.#api = api;
    if (api) {
      this.#off = api.subscribe(() => this.#refresh());
      // Loaded or failed, the screens stop waiting: no "Opening the room…" that never ends.
      const done = () => {
        this.#loaded = api;
        this.#refresh();
      };
      void api.load().then(done, done);
    }
    this.#refresh();
  }

  #refresh(): void {
    this.#setRooms(this.#api?.list() ?? []);
    this.#setVersion((n) => n + 1);
  }
}

const models = new WeakMap<AppModel, RoomsModel>();

/** The one RoomsModel of an app. */
export function roomsOf(app: AppModel): RoomsModel {
  let m = models.get(app);
  if (!m) {
    m = createRoot(() => new RoomsModel(app));
    models.set(app, m);
  }
  return m;
}
