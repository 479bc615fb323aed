/**
 * `Promise.withResolvers` (ES2024) for Node 20, which Loft supports (package.json engines) and
 * which lacks it: libp2p 3.x (@libp2p/utils, behind libp2p-noise 17) calls it while reading a
 * stream. Installed only when absent, only in the bench process; same contract as the standard.
 */
interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };
if (typeof P.withResolvers !== "function") {
  P.withResolvers = <T>(): Resolvers<T> => {
    let resolve!: Resolvers<T>["resolve"];
    let reject!: Resolvers<T>["reject"];
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
