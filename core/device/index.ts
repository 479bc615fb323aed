/**
 * The device protocol (docs/device.md): serial frames, HELLO, the flow-controlled link, the
 * pairing code and the device messages, and the owner's side of pairing. What the PWA's "Pair a
 * device" screen imports; the device side (agent, emulator) lives in device/.
 */
export { cobsDecode, cobsEncode } from "./cobs.ts";
export { crc32 } from "./crc32.ts";
export {
  DeviceEndpoint,
  type EndpointOptions,
  type OwnerConnectOptions,
  OwnerEndpoint,
  type SerialConnection,
} from "./endpoint.ts";
export { expectDeviceMessage, sendDeviceMessage } from "./exchange.ts";
export {
  DEFAULT_FRAME_PAYLOAD,
  type DeframeError,
  type DeframeEvent,
  type DeframeFault,
  Deframer,
  encodeFrame,
  type Frame,
  MAX_FRAME_PAYLOAD,
} from "./frame.ts";
export {
  CAP_CONFIRM_INPUT,
  CAP_TELEMETRY,
  CAP_WIFI,
  CAP_XXHFS,
  DEVICE_PROTOCOL_VERSION,
  decodeHello,
  encodeHello,
  type Hello,
  negotiatedProtocol,
  STATE_PAIRED,
  STATE_UNPAIRED,
} from "./hello.ts";
export {
  type DeviceMessage,
  decodeDeviceMessage,
  encodeDeviceMessage,
  type Provision,
} from "./messages.ts";
export {
  type PairedDevice,
  type PairingInfo,
  type PairingStep,
  type PairOptions,
  pairDevice,
  type ReconnectOptions,
  reconnectDevice,
} from "./owner.ts";
export { pairingCode, pairingCommit } from "./pairing-code.ts";
export {
  type BytePort,
  type BytePortSink,
  type LinkStats,
  type LinkTuning,
  SerialLink,
} from "./serial-link.ts";
