/**
 * The Python interpreter that has the Debian packages an interop test needs. Debian's
 * `/usr/bin/python3` comes first: a pyenv or venv `python3` earlier on PATH lacks Debian's
 * packages. `$LOFT_PYTHON` overrides. Nothing is skipped when it is missing: the tests fail and
 * say how to install it.
 */
import { spawnSync } from "node:child_process";

function findPython(module: string, pkg: string): string {
  const candidates = [process.env.LOFT_PYTHON, "/usr/bin/python3", "python3"].filter(
    (c): c is string => c !== undefined && c !== "",
  );
  const found = candidates.find(
    (c) => spawnSync(c, ["-c", `import ${module}`], { stdio: "ignore", timeout: 30_000 }).status === 0,
  );
  if (found === undefined)
    throw new Error(
      `${pkg} is not importable (tried $LOFT_PYTHON, /usr/bin/python3, python3): ` +
        `run \`node scripts/system-deps.mjs\` (apt-get install ${pkg})`,
    );
  return found;
}

/** python3-dissononce: the independent Noise implementation. */
export const findDissononcePython = () => findPython("dissononce", "python3-dissononce");

/** python3-cryptography: the primitives of test/interop/vectorcheck. */
export const findCryptographyPython = () =>
  findPython("cryptography.hazmat.primitives.ciphers.aead", "python3-cryptography");
