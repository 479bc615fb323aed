/**
 * The part of `@thaunknown/simple-peer/lite.js` (10.x, browser build over the page's
 * RTCPeerConnection) that web/src/net uses; the package ships no types. API:
 * https://github.com/feross/simple-peer#api (the fork keeps it).
 */
declare module "@thaunknown/simple-peer/lite.js" {
  export interface SimplePeerSignal {
    type?: string;
    sdp?: string;
    candidate?: { candidate: string; sdpMLineIndex?: number | null; sdpMid?: string | null };
    renegotiate?: boolean;
    transceiverRequest?: unknown;
  }

  export interface SimplePeerOptions {
    initiator?: boolean;
    trickle?: boolean;
    config?: RTCConfiguration;
    channelConfig?: RTCDataChannelInit;
    channelName?: string;
    objectMode?: boolean;
    iceCompleteTimeout?: number;
  }

  export default class SimplePeer {
    constructor(options?: SimplePeerOptions);
    static WEBRTC_SUPPORT: boolean;
    readonly connected: boolean;
    readonly destroyed: boolean;
    readonly bufferSize: number;
    /** Internal, but stable across simple-peer versions: the data channel and the connection. */
    readonly _channel: RTCDataChannel | null;
    readonly _pc: RTCPeerConnection | null;
    signal(data: SimplePeerSignal): void;
    send(chunk: Uint8Array | ArrayBuffer | string): void;
    destroy(error?: Error): void;
    on(event: "signal", listener: (data: SimplePeerSignal) => void): this;
    on(event: "connect", listener: () => void): this;
    on(event: "data", listener: (data: Uint8Array) => void): this;
    on(event: "close", listener: () => void): this;
    on(event: "error", listener: (error: Error & { code?: string }) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
    removeAllListeners(event?: string): this;
  }
}
