/// <reference types="vite/client" />

/** Set by web/vite.config.ts: the app's version (package.json version + build hash). */
declare const __LOFT_VERSION__: string;
