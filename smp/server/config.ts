/**
 * SMP listener options (docs/operations.md, "SMP listener"): flags and environment variables
 * through host/config.ts, read by `npm start` (server/main.ts) and `npm run relay` (relay-ws/main.ts).
 * Off unless `--smp-port` is given (0: any free port, as `--port`).
 */
import { isSmpPassword } from "../../core/smp/address.ts";
import { int, str } from "../../host/config.ts";

const portOrOff = (raw: string): number | "off" => (raw === "off" ? "off" : int(0, 65535)(raw));

export const smpOptions = {
  smpPort: {
    flag: "smp-port",
    env: "LOFT_SMP_PORT",
    default: "off" as number | "off",
    parse: portOrOff,
    help: "TCP port of the SMP-over-TLS listener (SimpleX clients, GoRelay-class devices; 5223 is SMP's usual port); 'off': none, 0: any free port",
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
  smpPassword: {
    flag: "smp-password",
    env: "LOFT_SMP_PASSWORD",
    default: "",
    parse: (raw: string): string => {
      if (raw !== "" && !isSmpPassword(raw))
        throw new Error("printable ASCII, 1–255 characters, no space, '@', ':' or '/'");
      return raw;
    },
    help: "password SMP clients must give in NEW to create queues (SMP basic auth: smp://<fingerprint>:<password>@host); empty: anyone may create",
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
  smpPort: number | "off";
  smpHost: string;
  smpAddressHost: string;
  /** Required in NEW when set (SMP basic auth); other commands never need it. */
  smpPassword?: string;
  smpDir: string;
}
