/**
 * Property-test budget: at least 10⁴ cases per property in `npm test`; `npm run fuzz` raises it
 * (FUZZ_RUNS=200000). Expensive state-machine properties may divide the budget, never below 10⁴
 * mutated inputs per decoder.
 */
export const FUZZ_RUNS = Math.max(10_000, Number(process.env.FUZZ_RUNS ?? 10_000));
