// core/ is isomorphic: it compiles against the ECMAScript library only (no DOM, no Node types).
// The few host globals every target runtime (browsers, workers, Node ≥ 20) provides are declared
// here, narrowly, so that anything else (fetch, document, Buffer, process…) fails to typecheck.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: Uint8Array): string;
}
declare function queueMicrotask(callback: () => void): void;
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
