/**
 * Calls held until the test lets them go: a test double's method awaits `wait()` before doing
 * its work; `held.length` is how many wait; `letGo()` lets every one waiting go on, in order.
 */
export class Held {
  readonly held: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise<void>((go) => this.held.push(go));
  }
  letGo(): void {
    for (const go of this.held.splice(0)) go();
  }
}
