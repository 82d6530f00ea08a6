'use strict';
// Node binding of the sfu library (N-API addon in src/addon.c over include/sfu.h).
//
// The library answers through one callback on its notifier thread; the addon queues
// each callback on a napi_threadsafe_function and this module dispatches it on the JS
// thread: responses settle the promise of `room.request()`, notifications and host
// events are emitted on the Room they belong to, the library's log records are emitted
// as 'log' on the Server (or written to stderr when nobody listens).

const { EventEmitter } = require('events');
const path = require('path');

let native;
try {
  native = require('./build/Release/sfu.node');
} catch (e) {
  const err = new Error(
    `sfu: the native addon is not built or cannot load (${path.join(__dirname, 'build', 'Release', 'sfu.node')}): ` +
      'its install script builds it (`npm install` of the package; in a checkout, `npm install` in ' +
      `bindings/node or bash bindings/node/setup.sh). Cause: ${e.message}`,
  );
  err.code = 'SFU_ADDON_NOT_BUILT';
  err.cause = e;
  throw err;
}

// Callback kinds (sfu_event_kind), plus the addon's own (src/addon.c, beyond the
// library's values, which grow): END is queued by close() behind every library callback,
// so it is the last thing dispatched for a server; LOG is a log record (target, message;
// its sfu_log_level in the request id slot).
const KIND_RESPONSE = 0;
const KIND_NOTIFICATION = 1;
const KIND_HOST = 2;
const KIND_HOST_RESPONSE = 3; // the answer to room.hostRequest()
const KIND_END = 0x10000;
const KIND_LOG = 0x10001;
const LOG_LEVELS = { 1: 'error', 2: 'warn', 3: 'debug' };

const kCreate = Symbol('sfu.create');
const kClosed = Symbol('sfu.markClosed');

function toJson(value, what) {
  if (typeof value === 'string') return value;
  let s;
  try {
    s = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`${what} must be JSON-serialisable: ${e.message}`);
  }
  if (typeof s !== 'string') throw new TypeError(`${what} must be an object or a JSON string`);
  return s;
}

function checkName(value, what) {
  if (typeof value !== 'string') {
    const err = new TypeError(`${what} must be a string`);
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
}

function serverClosedError() {
  const err = new Error('server closed');
  err.code = 'SFU_RESULT_SERVER_CLOSED';
  return err;
}

function roomClosedError(roomId) {
  const err = new Error(`room closed: ${roomId}`);
  err.code = 'SFU_RESULT_ROOM_NOT_FOUND';
  return err;
}

function parse(json) {
  try {
    return JSON.parse(json);
  } catch (_) {
    // The library only emits JSON; keep the text rather than throw on the JS thread.
    return json;
  }
}

class Server extends EventEmitter {
  #h;
  #closed = false;
  #drained = false;
  #nextId = 1;
  // request id -> { resolve, reject } for room.request(); { room } for the marker a
  // closing room sends (see Room#close).
  #pending = new Map();
  // room id -> Room[]: the rooms with that id that may still get callbacks, oldest
  // first (a closed room stays until its close marker comes back). Callbacks for the
  // id go to the first one.
  #rooms = new Map();
  #unmatched = 0;

  /**
   * Start a server. `config`: undefined/null for the defaults, or an object (or JSON
   * text) with the keys of `sfu_server_new`. Throws an Error whose message comes from
   * the library (it names the bad key) and whose `.code` is the sfu_result name.
   */
  constructor(config) {
    super();
    const json = config == null ? null : toJson(config, 'config');
    this.#h = native.serverNew(json, (kind, roomId, peerName, requestId, text) =>
      this.#dispatch(kind, roomId, peerName, requestId, text),
    );
  }

  /** True once close() was called. */
  get closed() {
    return this.#closed;
  }

  /**
   * The server's metrics in the Prometheus text exposition format (version 0.0.4;
   * serve it as `text/plain; version=0.0.4`). Never waits for a worker: counters are
   * what the workers last published, gauges at most about 100 ms old. Throws
   * (SFU_RESULT_SERVER_CLOSED) once closed.
   */
  metrics() {
    if (this.#closed) throw serverClosedError();
    return native.metrics(this.#h);
  }

  /**
   * Create a room. `options`: undefined for the default codecs, or
   * `{ mediaCodecs: [...] }` (mediasoup v2 room format). Throws on error (`.code`:
   * SFU_RESULT_INVALID_ARGUMENT, SFU_RESULT_ROOM_EXISTS, SFU_RESULT_SERVER_CLOSED...).
   */
  createRoom(roomId, options) {
    checkName(roomId, 'roomId');
    const json = options == null ? null : toJson(options, 'options');
    if (this.#closed) throw serverClosedError();
    native.createRoom(this.#h, roomId, json);
    const room = Room[kCreate](this, roomId, {
      request: (r, peerName, request) => this.#request(r, peerName, request),
      hostRequest: (r, request) => this.#hostRequest(r, request),
      notify: (r, peerName, notification) => this.#notify(r, peerName, notification),
      closePeer: (r, peerName) => this.#closePeer(r, peerName),
      close: (r) => this.#closeRoom(r),
    });
    const list = this.#rooms.get(roomId);
    if (list) list.push(room);
    else this.#rooms.set(roomId, [room]);
    return room;
  }

  /**
   * Stop the server. Blocks until the library has stopped: requests still queued are
   * answered "server closed", rooms send `closed` to their peers. Every request still
   * pending is rejected with Error('server closed'). Notifications produced by the
   * shutdown are still emitted (asynchronously) on their rooms, then the server emits
   * 'close'. Idempotent.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    native.close(this.#h); // sfu_server_free, then the threadsafe function is released
    for (const list of this.#rooms.values()) for (const room of list) room[kClosed]();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    // The library's own "server closed" responses for these ids arrive later and are
    // ignored (unknown ids): one settle per promise.
    for (const p of pending) if (p.reject) p.reject(serverClosedError());
  }

  // A closed Room refuses work: its id may already name a new room.
  #checkOpen(room) {
    if (this.#closed) throw serverClosedError();
    if (room.closed) throw roomClosedError(room.id);
  }

  #request(room, peerName, request) {
    return new Promise((resolve, reject) => {
      checkName(peerName, 'peerName');
      const json = toJson(request, 'request');
      this.#checkOpen(room);
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      try {
        native.request(this.#h, room.id, peerName, id, json);
      } catch (e) {
        this.#pending.delete(id);
        throw e;
      }
    });
  }

  // A host request about `room` (sfu_server_host_request): the same id sequence and
  // pending table as #request; answered as KIND_HOST_RESPONSE.
  #hostRequest(room, request) {
    return new Promise((resolve, reject) => {
      const json = toJson(request, 'request');
      this.#checkOpen(room);
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      try {
        native.hostRequest(this.#h, room.id, id, json);
      } catch (e) {
        this.#pending.delete(id);
        throw e;
      }
    });
  }

  #notify(room, peerName, notification) {
    checkName(peerName, 'peerName');
    const json = toJson(notification, 'notification');
    this.#checkOpen(room);
    native.notify(this.#h, room.id, peerName, json);
  }

  #closePeer(room, peerName) {
    checkName(peerName, 'peerName');
    this.#checkOpen(room);
    native.closePeer(this.#h, room.id, peerName);
  }

  #closeRoom(room) {
    room[kClosed]();
    if (this.#closed) return;
    try {
      native.closeRoom(this.#h, room.id);
    } catch (e) {
      // The library already closed it (internal error): its `roomClosed` host event
      // is on the way and retires the Room.
      if (e.code === 'SFU_RESULT_ROOM_NOT_FOUND') return;
      throw e;
    }
    // The `closed` notifications of this room are queued for the notifier now. A
    // request to the gone room is answered ("room not found") behind them; when that
    // answer arrives the Room stops receiving callbacks for its id.
    const id = this.#nextId++;
    this.#pending.set(id, { room });
    try {
      native.request(this.#h, room.id, '', id, '{}');
    } catch (_) {
      this.#pending.delete(id);
      this.#forget(room);
    }
  }

  #forget(room) {
    const list = this.#rooms.get(room.id);
    if (!list) return;
    const i = list.indexOf(room);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#rooms.delete(room.id);
  }

  #dispatch(kind, roomId, peerName, requestId, text) {
    switch (kind) {
      case KIND_RESPONSE:
      case KIND_HOST_RESPONSE: {
        const p = this.#pending.get(requestId);
        if (!p) {
          this.#unmatched++; // settled by close() already
          return;
        }
        this.#pending.delete(requestId);
        if (p.room) {
          this.#forget(p.room);
          return;
        }
        const msg = parse(text);
        if (msg && msg.ok === true) {
          p.resolve(msg.data);
        } else {
          const reason = msg && typeof msg.error === 'string' ? msg.error : `invalid response: ${text}`;
          p.reject(new Error(reason));
        }
        return;
      }
      case KIND_NOTIFICATION:
      case KIND_HOST: {
        const message = parse(text);
        const list = this.#rooms.get(roomId);
        const room = list && list[0];
        const name = kind === KIND_NOTIFICATION ? 'notification' : 'hostEvent';
        if (!room) {
          // A room this binding does not know (closed and retired): the server gets it.
          this.emit(name, roomId, peerName, message);
          return;
        }
        if (kind === KIND_HOST && message && message.event === 'roomClosed') {
          // The library closed the room itself (internal error); this is its last event.
          room[kClosed]();
          this.#forget(room);
        }
        room.emit(name, peerName, message);
        return;
      }
      case KIND_LOG: {
        // roomId carries the target, text the message, requestId the level.
        const level = LOG_LEVELS[requestId] || 'error';
        if (this.listenerCount('log') > 0) this.emit('log', level, roomId, text);
        else process.stderr.write(`sfu [${level}] ${roomId}: ${text}\n`);
        return;
      }
      case KIND_END: {
        this.#drained = true;
        this.#rooms.clear();
        this.emit('close');
        return;
      }
      default:
        return;
    }
  }

  /** @internal test introspection */
  _debugState() {
    return {
      closed: this.#closed,
      drained: this.#drained,
      pending: this.#pending.size,
      rooms: this.#rooms.size,
      unmatchedResponses: this.#unmatched,
    };
  }
}

class Room extends EventEmitter {
  #server;
  #id;
  #ops;
  #closed = false;

  static [kCreate](server, id, ops) {
    const r = new Room(kCreate);
    r.#server = server;
    r.#id = id;
    r.#ops = ops;
    return r;
  }

  /** Rooms come from server.createRoom(). */
  constructor(token) {
    if (token !== kCreate) throw new TypeError('use server.createRoom()');
    super();
  }

  get id() {
    return this.#id;
  }

  get server() {
    return this.#server;
  }

  /** True once close() was called (or the server closed, or the library closed it). */
  get closed() {
    return this.#closed;
  }

  [kClosed]() {
    this.#closed = true;
  }

  /**
   * Pass a request a client (`peerName`) sent. Resolves with the response `data`;
   * rejects with Error(reason) when the library answers {"ok":false}, and with
   * Error('server closed') if the server closes first. A closed room rejects at once
   * (`.code` SFU_RESULT_ROOM_NOT_FOUND).
   */
  request(peerName, request) {
    return this.#ops.request(this, peerName, request);
  }

  /**
   * Make a request about this room as the host, not on behalf of a peer
   * (sfu_server_host_request): `{method, ...}` with one of the host methods of
   * docs/PROTOCOL.md ("Host requests"): createRtpStreamer (resolves with
   * {streamerId, localIp, localPort, rtpParameters, sdp}), closeRtpStreamer,
   * enableAudioLevels, disableAudioLevels, enableActiveSpeaker, disableActiveSpeaker.
   * Resolves with the answer's `data`; rejects with Error(reason) on {"ok":false}
   * ('room not found', 'producer not found', a field error...), Error('server closed')
   * if the server closes first. The events the room then produces (audioLevels,
   * activeSpeaker, rtpStreamerClosed) are emitted as 'hostEvent' with peerName ''.
   */
  hostRequest(request) {
    return this.#ops.hostRequest(this, request);
  }

  /** Pass a notification a client sent. Failures come back as a 'hostEvent' (notificationError). */
  notify(peerName, notification) {
    this.#ops.notify(this, peerName, notification);
  }

  /** Close one peer: it gets `closed`, the others `peerClosed`. Throws (e.g. SFU_RESULT_PEER_NOT_FOUND). */
  closePeer(peerName) {
    this.#ops.closePeer(this, peerName);
  }

  /** Close the room: every peer gets `closed` (emitted here, asynchronously). Idempotent. */
  close() {
    if (this.#closed) return;
    this.#ops.close(this);
  }
}

/** The library version, e.g. "0.1.0". */
const version = native.version();

/** Native counters (tests: leak checks). */
function counters() {
  return native.counters();
}

module.exports = { Server, Room, version, counters };
