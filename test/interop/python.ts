/**
 * The Python interpreter that has Debian's python3-dissononce, for the interop tests. Debian's
 * `/usr/bin/python3` comes first: a pyenv or venv `python3` earlier on PATH lacks Debian's
 * packages. `$LOFT_PYTHON` overrides. Nothing is skipped when it is missing: the tests fail and
 * say how to install it.
 */
import { spawnSync } from "node:child_process";

export function findDissononcePython(): string {
  const candidates = [process.env.LOFT_PYTHON, "/usr/bin/python3", "python3"].filter(
    (c): c is string => c !== undefined && c !== "",
  );
  const found = candidates.find(
    (c) => spawnSync(c, ["-c", "import dissononce"], { stdio: "ignore" }).status === 0,
  );
  if (found === undefined)
    throw new Error(
      "python3-dissononce is not importable (tried $LOFT_PYTHON, /usr/bin/python3, python3): " +
        "run `node scripts/system-deps.mjs` (apt-get install python3-dissononce)",
    );
  return found;
}
