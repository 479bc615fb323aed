/**
 * SMP listener options (docs/operations.md, "SMP listener"): flags and environment variables
 * through host/config.ts, read by `npm start` (server/main.ts) and `npm run relay` (relay-ws/main.ts).
 * Off unless `--smp-port` is given.
 */
import { int, str } from "../../host/config.ts";

export const smpOptions = {
  smpPort: {
    flag: "smp-port",
    env: "LOFT_SMP_PORT",
    default: 0,
    parse: int(0, 65535),
    help: "TCP port of the SMP-over-TLS listener (SimpleX clients, GoRelay-class devices; 5223 is SMP's usual port). 0: off",
  },
  smpHost: {
    flag: "smp-host",
    env: "LOFT_SMP_HOST",
    default: "0.0.0.0",
    parse: str,
    help: "address the SMP listener binds",
  },
  smpAddressHost: {
    flag: "smp-address-host",
    env: "LOFT_SMP_ADDRESS_HOST",
    default: "",
    parse: str,
    help: "host name clients reach the SMP listener at, for its smp:// address and certificate (default: this machine's host name)",
  },
  smpDir: {
    flag: "smp-dir",
    env: "LOFT_SMP_DIR",
    default: "",
    parse: str,
    help: "folder of the SMP certificates (default: <relay data dir>/smp)",
  },
};

export interface SmpConfig {
  smpPort: number;
  smpHost: string;
  smpAddressHost: string;
  smpDir: string;
}
