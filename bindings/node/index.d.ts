// Type declarations for the `sfu` Node binding (index.js).
import { EventEmitter } from 'events';

/** Names of `sfu_result` (include/sfu.h), used as `Error.code` for call failures. */
export type SfuResultName =
  | 'SFU_RESULT_NULL_ARGUMENT'
  | 'SFU_RESULT_INVALID_UTF8'
  | 'SFU_RESULT_INVALID_CONFIG'
  | 'SFU_RESULT_INVALID_ARGUMENT'
  | 'SFU_RESULT_ROOM_EXISTS'
  | 'SFU_RESULT_ROOM_NOT_FOUND'
  | 'SFU_RESULT_PEER_NOT_FOUND'
  | 'SFU_RESULT_SERVER_CLOSED'
  | 'SFU_RESULT_IO'
  | 'SFU_RESULT_INTERNAL';

/** An Error thrown for a failed library call: message from `sfu_last_error()`. */
export interface SfuError extends Error {
  code: SfuResultName;
  /** The numeric `sfu_result` (absent when the binding itself detected the condition). */
  result?: number;
}

/** `sfu_server_new` configuration (see the library README). */
export interface ServerConfig {
  numWorkers?: number;
  logLevel?: 'debug' | 'warn' | 'error' | 'none';
  rtcIPv4?: string;
  rtcAnnouncedIPv4?: string | null;
  rtcMinPort?: number;
  rtcMaxPort?: number;
  dtlsCertificateFile?: string;
  dtlsPrivateKeyFile?: string;
  maxMessageSize?: number;
  transportTimeout?: number;
  /** Plain RTP (docs/PROTOCOL.md, "Plain RTP transports" and "Host requests"). */
  maxRtpStreamersPerRoom?: number;
  maxPlainTransportsPerPeer?: number;
  plainRtpComedia?: boolean;
}

/** A room codec in mediasoup v2's room format. */
export interface RoomMediaCodec {
  kind: 'audio' | 'video';
  name: string;
  clockRate: number;
  channels?: number;
  parameters?: Record<string, unknown>;
}

export interface RoomOptions {
  mediaCodecs: RoomMediaCodec[];
}

/** A mediasoup v2 notification for a client (`notification: true`, `method`, ...). */
export interface Notification {
  notification: true;
  method: string;
  target?: string;
  [key: string]: unknown;
}

/**
 * A host-facing event (`{ event: 'notificationError' | 'transportClosed' | 'roomClosed', ... }`,
 * and the room's own events after host requests: see `RoomHostEvent`).
 */
export interface HostEvent {
  event: string;
  [key: string]: unknown;
}

/** Severity of a library log record; a server produces those at or above its `logLevel`. */
export type LogLevel = 'error' | 'warn' | 'debug';
// ---------------------------------------------------------------- host requests
// Requests the host makes about a room (docs/PROTOCOL.md, "Host requests").

/** `createRtpStreamer`: send a producer's media as plain RTP to a recorder (ffmpeg, GStreamer). */
export interface CreateRtpStreamerRequest {
  method: 'createRtpStreamer';
  /** The producing peer; may be left out when `producerId` is unique in the room. */
  peerName?: string;
  producerId: number;
  /** Where the RTP goes (a unicast address literal). */
  remoteIp: string;
  remotePort: number;
  /** Where RTCP goes; default `remotePort + 1`, or `remotePort` with `rtcpMux`. */
  remoteRtcpPort?: number;
  rtcpMux?: boolean;
}

export interface CreateRtpStreamerAnswer {
  streamerId: number;
  /** The address the streamer sends from (the worker's UDP socket). */
  localIp: string;
  localPort: number;
  /** The stream as sent: room payload type, a fresh SSRC, no RTX. */
  rtpParameters: Record<string, unknown>;
  /** A session description a recorder opens as is (`ffmpeg -protocol_whitelist file,udp,rtp -i x.sdp`). */
  sdp: string;
}

export type HostRequest =
  | CreateRtpStreamerRequest
  | { method: 'closeRtpStreamer'; streamerId: number }
  | { method: 'enableAudioLevels'; intervalMs?: number; thresholdDbov?: number }
  | { method: 'disableAudioLevels' }
  | { method: 'enableActiveSpeaker'; intervalMs?: number; thresholdDbov?: number; consecutive?: number }
  | { method: 'disableActiveSpeaker' };

/** Host events a room produces after host requests (`peerName` ''). */
export type RoomHostEvent =
  | { event: 'audioLevels'; levels: { peerName: string; producerId: number; dBov: number }[] }
  | { event: 'activeSpeaker'; peerName: string | null; producerId: number | null }
  | { event: 'rtpStreamerClosed'; streamerId: number; reason: string };

/** A JSON object, or its JSON text as received from the client. */
export type Message = object | string;

export class Server extends EventEmitter {
  /**
   * Start a server (worker threads, UDP sockets, notifier thread). Throws an
   * `SfuError` (code SFU_RESULT_INVALID_CONFIG, message naming the key) on a bad
   * config. An open server keeps the Node process alive until `close()`.
   */
  constructor(config?: ServerConfig | string | null);

  /** True once `close()` was called. */
  readonly closed: boolean;

  /**
   * The server's metrics in the Prometheus text exposition format (version 0.0.4): serve
   * it as `text/plain; version=0.0.4`. Never waits for a worker: counters are what the
   * workers last published, gauges at most about 100 ms old. Throws an `SfuError`
   * (SFU_RESULT_SERVER_CLOSED) once closed.
   */
  metrics(): string;

  /** Create a room; `options` default to the library's codecs. Throws an `SfuError`. */
  createRoom(roomId: string, options?: RoomOptions | string | null): Room;

  /**
   * Stop the server; blocks until the library has stopped. Pending requests reject
   * with Error('server closed'); shutdown notifications (`closed` to joined peers) are
   * still emitted on their rooms, then 'close' is emitted. Idempotent.
   */
  close(): void;

  /** Every callback of this server has been dispatched (after `close()`). */
  on(event: 'close', listener: () => void): this;
  /** A notification for a room this binding no longer routes (closed and retired). */
  on(event: 'notification', listener: (roomId: string, peerName: string, message: Notification) => void): this;
  /** A host event for a room this binding no longer routes. */
  on(event: 'hostEvent', listener: (roomId: string, peerName: string, event: HostEvent) => void): this;
  /**
   * A library log record of this server (those at or above its `logLevel`), emitted on
   * the JS thread in the order the library produced records and events. `target` is the
   * part of the library that logged (e.g. 'sfu::room'). Without a 'log' listener
   * records are written to stderr (`sfu [level] target: message`).
   */
  on(event: 'log', listener: (level: LogLevel, target: string, message: string) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class Room extends EventEmitter {
  /** Rooms come from `Server#createRoom`; constructing one throws. */
  private constructor();

  readonly id: string;
  readonly server: Server;
  /** True once closed (by `close()`, the server's close, or the library). */
  readonly closed: boolean;

  /**
   * Pass a request a client sent. Resolves with the response `data`; rejects with
   * `Error(reason)` on `{ok:false}`, with Error('server closed') if the server closes
   * first, and with an `SfuError` for call errors (closed room: SFU_RESULT_ROOM_NOT_FOUND).
   */
  request<T = any>(peerName: string, request: Message): Promise<T>;

  /**
   * A request about this room made by the host (not on behalf of a peer). Resolves with
   * the answer's `data` (`CreateRtpStreamerAnswer` for `createRtpStreamer`, `{}` for the
   * others); rejects with `Error(reason)` on `{ok:false}` (e.g. 'room not found',
   * 'producer not found'), with Error('server closed') if the server closes first, and
   * with an `SfuError` for call errors (closed room: SFU_RESULT_ROOM_NOT_FOUND).
   */
  hostRequest(request: CreateRtpStreamerRequest): Promise<CreateRtpStreamerAnswer>;
  hostRequest<T = any>(request: HostRequest | Message): Promise<T>;

  /** Pass a notification a client sent; failures come back as a 'hostEvent'. Throws an `SfuError`. */
  notify(peerName: string, notification: Message): void;

  /** Close one peer: `closed` to it, `peerClosed` to the others. Throws an `SfuError`. */
  closePeer(peerName: string): void;

  /** Close the room: every joined peer gets `closed` (emitted here). Idempotent. */
  close(): void;

  /** A notification to deliver verbatim to `peerName`. */
  on(event: 'notification', listener: (peerName: string, message: Notification) => void): this;
  /** A host-facing event (`peerName` may be ''; it is for the room's own events, `RoomHostEvent`). */
  on(event: 'hostEvent', listener: (peerName: string, event: HostEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** The library version (`sfu_version()`). */
export const version: string;

/** Native counters, for leak tests. */
export function counters(): {
  serversCreated: number;
  /** The library's userdata finalizer runs (one per freed server). */
  userdataFreed: number;
  tsfnFinalized: number;
  /** A tsfn finalized before its library stopped: must stay 0. */
  tsfnFinalizedEarly: number;
  /** GC finalizers of server handles. */
  handlesFinalized: number;
  /** Callbacks dropped (out of memory, or during environment teardown). */
  itemsDropped: number;
};
