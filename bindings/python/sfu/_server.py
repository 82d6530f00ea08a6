"""Server and Room: the Python object model over the C API.

Threading model (mirrors include/sfu.h):

* Every method may be called from any thread.
* The library calls back on one library-owned thread (the *notifier*), never
  concurrently with itself, per peer in the order messages were produced. Room
  handlers (``on_notification``, ``on_host_event``) run there. They may call
  ``notify``, ``close_peer``, ``create_room``, ``Room.close`` and even
  ``Server.close``; a blocking ``Room.request`` from a handler would wait for a
  response only that same thread can deliver, so it raises ``RuntimeError``.
* ``Server.close()`` blocks until the library's threads have stopped; after it
  returns no handler runs and every request still pending has been failed.
* The library's log records go to ``logging.getLogger("sfu")`` (levels "error",
  "warn", "debug" become ``ERROR``, ``WARNING``, ``DEBUG``), emitted on the notifier
  thread like the handlers, in order with them. Which records a server produces is
  its ``logLevel`` (config; default "error").

Lifetime: one module-level C trampoline (``_TRAMPOLINE``) serves every server, and
the C ``userdata`` is a small integer naming a ``_Core`` in ``_REGISTRY``. The
registry entry is removed by the library's ``userdata_free`` finalizer, so the
trampoline and the core stay alive exactly as long as the library may call them,
and neither references the ``Server`` object: an unclosed ``Server`` that becomes
garbage is closed by ``__del__`` (a safety net; call ``close()``).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import itertools
import json
import logging
import sys
import threading
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Union

from . import _lib
from ._lib import EVENT_FN, FREE_FN, LOG_FN, EventKind, LogLevel, Result

__all__ = [
    "Error",
    "SfuError",
    "RequestError",
    "Server",
    "Room",
    "version",
    "userdata_free_count",
    "live_userdata",
]

log = logging.getLogger("sfu")

Json = Union[Mapping[str, Any], str, bytes]
NotificationHandler = Callable[[str, Dict[str, Any]], Any]

#: How long ``Room.close()`` waits for the room's last messages to be handed to its
#: handlers (bounded; see ``Room.close``).
ROOM_CLOSE_DRAIN_TIMEOUT = 5.0


# --------------------------------------------------------------------------- errors


class Error(Exception):
    """Base class of this package's exceptions."""


class SfuError(Error):
    """A failed C call: ``code`` is a :class:`Result`, ``message`` the library's
    ``sfu_last_error()`` text (e.g. names the bad config key)."""

    def __init__(self, code: int, message: str = ""):
        try:
            code = Result(code)
        except ValueError:
            pass
        self.code = code
        self.message = message
        name = code.name if isinstance(code, Result) else str(code)
        super().__init__(f"{message} [{name}]" if message else name)


class RequestError(Error):
    """A request answered with ``{"ok": false, "error": reason}`` (or failed because
    the server closed): ``reason`` is the library's reason string, what a host
    forwards to the client's errback."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# ----------------------------------------------------------- exception reporting


def _capture_unraisable_type():
    """``sys.UnraisableHookArgs`` is not exposed; get the type from a genuine
    unraisable event, once, at import. ``None`` if that fails (logging is used)."""
    seen = []

    class _Probe:
        def __del__(self):
            raise RuntimeError("sfu: probing sys.unraisablehook")

    old = sys.unraisablehook
    sys.unraisablehook = lambda args: seen.append(type(args))
    try:
        p = _Probe()
        del p
    finally:
        sys.unraisablehook = old
    return seen[0] if seen else None


_UnraisableArgs = _capture_unraisable_type()


def _report(exc: BaseException, msg: str, obj: Any = None) -> None:
    """Report an exception that must not propagate (it would cross into C):
    through ``sys.unraisablehook`` like CPython does, else logging. Never raises."""
    try:
        if _UnraisableArgs is not None:
            sys.unraisablehook(_UnraisableArgs((type(exc), exc, exc.__traceback__, msg, obj)))
            return
    except BaseException:  # noqa: BLE001 - a broken hook must not escape either
        pass
    try:
        log.error("%s: %r", msg, obj, exc_info=(type(exc), exc, exc.__traceback__))
    except BaseException:  # noqa: BLE001
        pass


# ------------------------------------------------------------------ JSON helpers


def _encode_json(value: Json, what: str) -> bytes:
    """A message as the bytes given to C. Mappings are serialized; ``str`` and
    ``bytes`` are passed verbatim (e.g. a client's raw text)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, Mapping):
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    else:
        raise TypeError(f"{what} must be a dict, str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL byte")
    return data


def _encode_id(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    data = value.encode("utf-8")
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL byte")
    return data


def _check(code: int) -> None:
    if code != Result.OK:
        raise SfuError(code, _lib.last_error())


def version() -> str:
    """The library version (``sfu_version()``), e.g. ``"0.1.0"``."""
    return _lib.lib().sfu_version().decode("ascii")


# ------------------------------------------------------------- pending requests


_tls = threading.local()


def _in_callback() -> bool:
    return getattr(_tls, "depth", 0) > 0


class _Waiter:
    """One pending request. ``settle`` is called exactly once (by the notifier
    thread with the response, or by ``close`` / a failed submit / a timeout)."""

    __slots__ = ()

    def settle(self, ok: bool, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _SyncWaiter(_Waiter):
    __slots__ = ("event", "ok", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False
        self.value: Any = None

    def settle(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value
        self.event.set()


class _AsyncWaiter(_Waiter):
    """Resolves an asyncio future on its own loop (``call_soon_threadsafe``)."""

    __slots__ = ("loop", "future", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self.loop = loop
        self.future = future
        self.timer: Optional[asyncio.TimerHandle] = None

    def settle(self, ok: bool, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._set, ok, value)
        except RuntimeError:
            pass  # the loop is closed: nobody can await the future any more

    def _set(self, ok: bool, value: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.future.done():
            return  # cancelled or timed out meanwhile
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


class _BarrierWaiter(_Waiter):
    """Marks the point after which a closed room produces nothing more."""

    __slots__ = ("event", "core", "room_id", "state")

    def __init__(self, core: "_Core", room_id: str, state: "_RoomState") -> None:
        self.event = threading.Event()
        self.core, self.room_id, self.state = core, room_id, state

    def settle(self, ok: bool, value: Any) -> None:
        self.core._forget_room(self.room_id, self.state)
        self.event.set()


# -------------------------------------------------------------------- the core


class _RoomState:
    """What the notifier needs to dispatch a room's events: its handlers."""

    __slots__ = ("on_notification", "on_host_event", "closed", "__weakref__")

    def __init__(self) -> None:
        self.on_notification: Optional[NotificationHandler] = None
        self.on_host_event: Optional[NotificationHandler] = None
        self.closed = False


_OPEN, _CLOSING, _CLOSED = 0, 1, 2


class _Core:
    """Per-server state shared with the notifier thread. Holds the C handle; never
    references the ``Server`` or ``Room`` objects."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.handle: Optional[int] = None
        # Re-entrant: a Server.__del__ run by the GC on a thread inside the lock
        # (the notifier, say) must not deadlock on its own core.
        self.lock = threading.RLock()
        self.state = _OPEN
        self.done = threading.Event()  # set when close() has finished
        self.pending: Dict[int, _Waiter] = {}
        self.rooms: Dict[str, _RoomState] = {}
        self.ids = itertools.count(1)  # request ids, per server
        self.delivering = True  # False once free() returned: drop anything late
        # The C callback objects, referenced from the core too for clarity (they are
        # module-level and live as long as the module anyway).
        self.callbacks = (_TRAMPOLINE, _FREE_TRAMPOLINE, _LOG_TRAMPOLINE)

    # -- called from the notifier thread ------------------------------------------

    def dispatch(self, kind: int, room_id: str, peer: str, request_id: int, text: str) -> None:
        if not self.delivering:
            return
        if kind == EventKind.RESPONSE or kind == EventKind.HOST_RESPONSE:
            # Requests and host requests share one id sequence and one pending table.
            with self.lock:
                waiter = self.pending.pop(request_id, None)
            if waiter is None:
                log.debug("response to request %d that is no longer pending", request_id)
                return
            ok, value = _parse_response(text)
            waiter.settle(ok, value)
            return
        state = self.rooms.get(room_id)
        if state is None:
            log.debug("event for room %r without a Room object: %s", room_id, text)
            return
        msg = json.loads(text)
        if kind == EventKind.NOTIFICATION:
            handler = state.on_notification
            what = "on_notification"
        elif kind == EventKind.HOST:
            handler = state.on_host_event
            what = "on_host_event"
        else:
            log.debug("unknown event kind %d ignored", kind)
            return
        if handler is not None:
            try:
                handler(peer, msg)
            except BaseException as e:  # noqa: BLE001 - a handler must not stop delivery
                _report(e, f"Exception ignored in sfu {what} handler for room {room_id!r}", handler)
        if kind == EventKind.HOST and isinstance(msg, dict) and msg.get("event") == "roomClosed":
            # The room closed itself (internal error); everything it produced was
            # queued before this event.
            self._forget_room(room_id, state)

    def _forget_room(self, room_id: str, state: _RoomState) -> None:
        state.closed = True
        with self.lock:
            if self.rooms.get(room_id) is state:
                del self.rooms[room_id]

    # -- requests -------------------------------------------------------------------

    def submit(self, room_id: bytes, peer: bytes, payload: bytes, waiter: _Waiter) -> int:
        """Register ``waiter`` and pass the request to C. Returns the request id."""
        return self._submit(waiter, lambda handle, rid: _lib.lib().sfu_server_request(handle, room_id, peer, rid, payload))

    def submit_host(self, room_id: bytes, payload: bytes, waiter: _Waiter) -> int:
        """Register ``waiter`` and pass a host request to C (``sfu_server_host_request``;
        answered as ``HOST_RESPONSE``). Returns the request id."""
        return self._submit(waiter, lambda handle, rid: _lib.lib().sfu_server_host_request(handle, room_id, rid, payload))

    def _submit(self, waiter: _Waiter, call: Callable[[Any, int], int]) -> int:
        with self.lock:
            if self.state != _OPEN:
                raise SfuError(Result.SERVER_CLOSED, "server closed")
            rid = next(self.ids)
            self.pending[rid] = waiter
            handle = self.handle
        code = call(handle, rid)
        if code != Result.OK:
            message = _lib.last_error()
            with self.lock:
                mine = self.pending.pop(rid, None) is not None
            if code == Result.SERVER_CLOSED:
                # Raced with close(): fail it like the requests close() fails.
                if mine:
                    waiter.settle(False, RequestError("server closed"))
                return rid
            if mine:
                raise SfuError(code, message)
        return rid

    def forget(self, rid: int) -> bool:
        with self.lock:
            return self.pending.pop(rid, None) is not None

    # -- close ----------------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            state = self.state
            if state == _OPEN:
                self.state = _CLOSING
        if state != _OPEN:
            # Idempotent. Another thread is closing: wait for it, unless we are on the
            # notifier thread, which that close() is itself waiting for.
            if state == _CLOSING and not _in_callback():
                self.done.wait(60.0)
            return
        try:
            if self.handle is not None:
                # Blocks (GIL released) until the workers and the notifier stopped:
                # queued requests are answered "server closed", rooms send `closed`,
                # then userdata_free runs. From a handler it returns at once and no
                # callback follows.
                _lib.lib().sfu_server_free(self.handle)
        finally:
            self.delivering = False
            with self.lock:
                self.state = _CLOSED
                left = list(self.pending.values())
                self.pending.clear()
                rooms = list(self.rooms.values())
                self.rooms.clear()
            for w in left:
                w.settle(False, RequestError("server closed"))
            for r in rooms:
                r.closed = True
            self.done.set()


def _parse_response(text: str):
    try:
        msg = json.loads(text)
    except ValueError as e:
        return False, RequestError(f"invalid response from the library: {e}")
    if isinstance(msg, dict) and msg.get("ok") is True:
        data = msg.get("data")
        return True, ({} if data is None else data)
    reason = msg.get("error") if isinstance(msg, dict) else None
    return False, RequestError(str(reason) if reason is not None else f"request failed: {text}")


def _block_on(core: _Core, submit: Callable[[_Waiter], int], timeout: Optional[float]) -> Dict[str, Any]:
    """Submit with a blocking waiter and wait for the answer (bounded by ``timeout``)."""
    waiter = _SyncWaiter()
    rid = submit(waiter)
    if not waiter.event.wait(timeout):
        if core.forget(rid):
            raise TimeoutError(f"no response to request {rid} within {timeout} s")
        waiter.event.wait()  # settled concurrently: it is being set right now
    if waiter.ok:
        return waiter.value
    raise waiter.value


def _as_future(core: _Core, loop: asyncio.AbstractEventLoop, submit: Callable[[_Waiter], int],
               timeout: Optional[float]) -> "asyncio.Future[Dict[str, Any]]":
    """Submit with a waiter that resolves a future of ``loop`` (with a timeout)."""
    future = loop.create_future()
    waiter = _AsyncWaiter(loop, future)
    rid = submit(waiter)

    def on_done(f: asyncio.Future) -> None:
        if waiter.timer is not None:
            waiter.timer.cancel()
        if f.cancelled():
            core.forget(rid)

    future.add_done_callback(on_done)
    if timeout is not None and not future.done():

        def expire() -> None:
            if not future.done() and core.forget(rid):
                future.set_exception(TimeoutError(f"no response to request {rid} within {timeout} s"))

        waiter.timer = loop.call_later(timeout, expire)
    return future


# ---------------------------------------------------- C trampolines and registry


_REGISTRY: Dict[int, _Core] = {}
_REGISTRY_LOCK = threading.Lock()
_UIDS = itertools.count(1)
_FREED: Dict[int, int] = {}


def _on_event(userdata, kind, room_id, peer_name, request_id, json_ptr, json_len):
    # Runs on the library's notifier thread. Nothing may propagate out of here.
    try:
        core = _REGISTRY.get(userdata or 0)
        if core is None:
            return
        text = ctypes.string_at(json_ptr, json_len).decode("utf-8", "replace") if json_ptr else ""
        room = room_id.decode("utf-8", "replace") if room_id else ""
        peer = peer_name.decode("utf-8", "replace") if peer_name else ""
        _tls.depth = getattr(_tls, "depth", 0) + 1
        try:
            core.dispatch(kind, room, peer, request_id, text)
        finally:
            _tls.depth -= 1
    except BaseException as e:  # noqa: BLE001
        _report(e, "Exception ignored in the sfu event callback")


def _on_free(userdata):
    # The library's userdata finalizer: runs exactly once, after the last callback.
    try:
        uid = userdata or 0
        with _REGISTRY_LOCK:
            _REGISTRY.pop(uid, None)
            _FREED[uid] = _FREED.get(uid, 0) + 1
    except BaseException as e:  # noqa: BLE001
        _report(e, "Exception ignored in the sfu userdata finalizer")


_LOG_LEVELS = {LogLevel.ERROR: logging.ERROR, LogLevel.WARN: logging.WARNING, LogLevel.DEBUG: logging.DEBUG}


def _on_log(userdata, level, target, message):
    # The library's log callback, on its notifier thread. Records are produced only at
    # or above the server's logLevel; logging's own level and handlers filter further.
    try:
        pylevel = _LOG_LEVELS.get(level, logging.ERROR)
        if log.isEnabledFor(pylevel):
            text = message.decode("utf-8", "replace") if message else ""
            tgt = target.decode("utf-8", "replace") if target else ""
            log.log(pylevel, "%s", text, extra={"sfu_target": tgt, "sfu_server": userdata or 0})
    except BaseException as e:  # noqa: BLE001
        _report(e, "Exception ignored in the sfu log callback")


_TRAMPOLINE = EVENT_FN(_on_event)
_FREE_TRAMPOLINE = FREE_FN(_on_free)
_LOG_TRAMPOLINE = LOG_FN(_on_log)
_NO_FREE = ctypes.cast(None, FREE_FN)


def userdata_free_count(userdata_id: int) -> int:
    """How many times the library ran ``userdata_free`` for the server whose
    :attr:`Server.userdata_id` this is (0 while it is alive, then exactly 1).
    For tests and diagnostics."""
    with _REGISTRY_LOCK:
        return _FREED.get(userdata_id, 0)


def live_userdata() -> set:
    """The ``userdata_id`` of every server the library still holds a callback for."""
    with _REGISTRY_LOCK:
        return set(_REGISTRY)


@atexit.register
def _close_all_at_exit() -> None:
    # A server left open would call into a finalizing interpreter.
    with _REGISTRY_LOCK:
        cores = list(_REGISTRY.values())
    for core in cores:
        try:
            core.close()
        except BaseException:  # noqa: BLE001
            pass


# ------------------------------------------------------------------- public API


class Server:
    """An SFU server: the library's worker threads, UDP sockets and rooms.

    ``config`` is ``None`` or a dict like the C config (``numWorkers``, ``rtcIPv4``,
    ``rtcAnnouncedIPv4``, ``rtcMinPort``, ``rtcMaxPort``, ``logLevel``, ...); a str is
    passed verbatim. Raises :class:`SfuError` (``code`` ``INVALID_CONFIG``, message
    naming the key) on a bad config.

    Use as a context manager or call :meth:`close`; ``close()`` is idempotent and
    blocks until the library's threads stopped (pending requests are failed with
    ``RequestError("server closed")``; after it returns no handler runs).
    """

    def __init__(self, config: Optional[Union[Mapping[str, Any], str]] = None):
        # Log records go to logging.getLogger("sfu") (see the module docstring); the
        # record's ``sfu_target`` is the library part that logged (e.g. "sfu::room"),
        # ``sfu_server`` this server's :attr:`userdata_id`.
        self._core: Optional[_Core] = None
        cfg = None if config is None else _encode_json(config, "config")
        dll = _lib.lib()
        uid = next(_UIDS)
        core = _Core(uid)
        with _REGISTRY_LOCK:
            _REGISTRY[uid] = core  # before sfu_server_new: no callback may miss it
        out = ctypes.c_void_p()
        try:
            code = dll.sfu_server_new(cfg, _TRAMPOLINE, ctypes.c_void_p(uid), _FREE_TRAMPOLINE, ctypes.byref(out))
            if code != Result.OK:
                raise SfuError(code, _lib.last_error())
        except BaseException:
            # On failure the library does not call userdata_free: the entry is ours.
            with _REGISTRY_LOCK:
                _REGISTRY.pop(uid, None)
            raise
        core.handle = out.value
        self._core = core
        # No finalizer: the userdata is only the server's id, for the records' extra.
        _check(dll.sfu_server_set_log_callback(core.handle, _LOG_TRAMPOLINE, ctypes.c_void_p(uid), _NO_FREE))

    # -- properties -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` started."""
        return self._core is None or self._core.state != _OPEN

    @property
    def userdata_id(self) -> int:
        """The key passed to C as ``userdata`` (see :func:`userdata_free_count`)."""
        return self._core.uid if self._core else 0

    def _require(self) -> _Core:
        core = self._core
        if core is None or core.state != _OPEN:
            raise SfuError(Result.SERVER_CLOSED, "server closed")
        return core

    # -- rooms ----------------------------------------------------------------------

    def create_room(self, room_id: str, options: Optional[Union[Mapping[str, Any], str]] = None) -> "Room":
        """Create a room (synchronous). ``options``: ``None`` for the default codecs
        or ``{"mediaCodecs": [...]}`` (mediasoup v2 format). Raises
        :class:`SfuError` (``INVALID_ARGUMENT`` naming the codec, ``ROOM_EXISTS``,
        ``SERVER_CLOSED``)."""
        core = self._require()
        rid = _encode_id(room_id, "room_id")
        opts = None if options is None else _encode_json(options, "options")
        _check(_lib.lib().sfu_server_create_room(core.handle, rid, opts))
        # Installed once the library accepted the id (a duplicate must not disturb
        # the live room's handlers). No event can precede this: events answer
        # requests, and requests reach the room only after this call returns.
        state = _RoomState()
        with core.lock:
            stale = core.rooms.get(room_id)
            if core.state == _OPEN:
                core.rooms[room_id] = state
            else:  # close() ran meanwhile and took the room down with the server
                state.closed = True
        if stale is not None:
            stale.closed = True
        return Room(self, room_id, state)

    # -- metrics --------------------------------------------------------------------

    def metrics(self) -> str:
        """The server's metrics in the Prometheus text exposition format (version
        0.0.4; serve it as ``text/plain; version=0.0.4``): rooms, peers, transports,
        producers, consumers, datagrams, RTP, RTCP feedback, drops, worker busy time
        and batch latency (the README lists every name). Never waits for a worker:
        counters are what the workers last published, gauges are at most about
        100 ms old. Raises :class:`SfuError` (``SERVER_CLOSED``) once closed."""
        core = self._require()
        out = ctypes.c_void_p()
        n = ctypes.c_size_t()
        dll = _lib.lib()
        _check(dll.sfu_server_metrics(core.handle, ctypes.byref(out), ctypes.byref(n)))
        try:
            return ctypes.string_at(out.value, n.value).decode("utf-8")
        finally:
            dll.sfu_string_free(out)

    # -- close ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the server and release it. Idempotent; blocks until the library's
        threads stopped (from a handler it returns at once). Afterwards no handler
        runs and every pending request has failed with
        ``RequestError("server closed")``."""
        core = self._core
        if core is not None:
            core.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Safety net only: an unclosed server that became garbage.
        core = getattr(self, "_core", None)
        if core is None or core.state != _OPEN:
            return
        try:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        except BaseException:  # noqa: BLE001
            pass
        try:
            core.close()
        except BaseException:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<sfu.Server userdata_id={self.userdata_id} {state}>"


class Room:
    """A room of a :class:`Server` (from :meth:`Server.create_room`).

    Handlers (set as attributes):

    * ``on_notification(peer_name, message)``: a mediasoup notification the host
      must deliver verbatim to ``peer_name``'s client.
    * ``on_host_event(peer_name, event)``: a host-facing event
      (``{"event": "notificationError" | "transportClosed" | "roomClosed", ...}``, and
      after host requests ``audioLevels``, ``activeSpeaker``, ``rtpStreamerClosed``);
      ``peer_name`` may be empty (it is for the room's own events).

    Both are called **on a library thread** (the notifier), never concurrently, per
    peer in production order. Hand work to your own thread or event loop (e.g.
    ``loop.call_soon_threadsafe``) rather than blocking there. An exception raised by
    a handler is reported through ``sys.unraisablehook`` and does not stop later
    deliveries.
    """

    def __init__(self, server: Server, room_id: str, state: _RoomState):
        self._server = server
        self._core = server._core
        self._id = room_id
        self._bid = room_id.encode("utf-8")
        self._state = state

    # -- handlers -------------------------------------------------------------------

    @property
    def on_notification(self) -> Optional[NotificationHandler]:
        """``fn(peer_name, message_dict)``, called on a library thread."""
        return self._state.on_notification

    @on_notification.setter
    def on_notification(self, fn: Optional[NotificationHandler]) -> None:
        self._state.on_notification = fn

    @property
    def on_host_event(self) -> Optional[NotificationHandler]:
        """``fn(peer_name, event_dict)``, called on a library thread."""
        return self._state.on_host_event

    @on_host_event.setter
    def on_host_event(self, fn: Optional[NotificationHandler]) -> None:
        self._state.on_host_event = fn

    @property
    def id(self) -> str:
        return self._id

    @property
    def server(self) -> Server:
        return self._server

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran, the server closed, or the room closed itself."""
        return self._state.closed

    # -- messages -------------------------------------------------------------------

    def request(self, peer_name: str, request: Json, timeout: Optional[float] = 10.0) -> Dict[str, Any]:
        """Pass a request ``peer_name``'s client sent and wait for its answer.

        Returns the response's ``data`` dict. Raises :class:`RequestError` with the
        library's reason on ``{"ok": false}`` (and ``"server closed"`` if the server
        closes first), ``TimeoutError`` after ``timeout`` seconds (``None``: no
        limit), :class:`SfuError` if the server is already closed. Must not be called
        from a handler (the response could only arrive on that same thread): use
        :meth:`request_async` from your event loop instead.
        """
        if _in_callback():
            raise RuntimeError("Room.request() would deadlock on the sfu callback thread")
        core = self._require()
        peer = _encode_id(peer_name, "peer_name")
        payload = _encode_json(request, "request")
        return _block_on(core, lambda w: core.submit(self._bid, peer, payload, w), timeout)

    def request_async(self, peer_name: str, request: Json, timeout: Optional[float] = 10.0) -> "asyncio.Future[Dict[str, Any]]":
        """Like :meth:`request`, for asyncio: ``data = await room.request_async(...)``.

        The request is passed to the library **when this is called** (so its order
        relative to :meth:`notify` calls is the call order); the returned future
        resolves on the calling thread's running loop (``call_soon_threadsafe``)
        with the ``data`` dict, or fails with :class:`RequestError` /
        ``TimeoutError``. Cancelling the future forgets the request.
        """
        loop = asyncio.get_running_loop()
        core = self._require()
        peer = _encode_id(peer_name, "peer_name")
        payload = _encode_json(request, "request")
        return _as_future(core, loop, lambda w: core.submit(self._bid, peer, payload, w), timeout)

    # -- host requests ----------------------------------------------------------------

    def host_request(self, request: Json, timeout: Optional[float] = 10.0) -> Dict[str, Any]:
        """Make a request about this room as the host, not on behalf of a peer
        (``sfu_server_host_request``), and wait for its answer.

        ``request`` is ``{"method": ..., ...}`` with one of the host methods of
        docs/PROTOCOL.md ("Host requests"): ``createRtpStreamer`` (answers
        ``{streamerId, localIp, localPort, rtpParameters, sdp}``), ``closeRtpStreamer``,
        ``enableAudioLevels``, ``disableAudioLevels``, ``enableActiveSpeaker``,
        ``disableActiveSpeaker``. Returns the answer's ``data`` dict. Raises
        :class:`RequestError` with the library's reason (``"room not found"``,
        ``"producer not found"``, a field error...), ``TimeoutError`` after ``timeout``
        seconds (``None``: no limit), :class:`SfuError` if the server is closed. Like
        :meth:`request`, it must not be called from a handler: use
        :meth:`host_request_async` there.

        The events the room then produces (``audioLevels``, ``activeSpeaker``,
        ``rtpStreamerClosed``) reach :attr:`on_host_event` with an empty peer name.
        """
        if _in_callback():
            raise RuntimeError("Room.host_request() would deadlock on the sfu callback thread")
        core = self._require()
        payload = _encode_json(request, "request")
        return _block_on(core, lambda w: core.submit_host(self._bid, payload, w), timeout)

    def host_request_async(self, request: Json, timeout: Optional[float] = 10.0) -> "asyncio.Future[Dict[str, Any]]":
        """Like :meth:`host_request`, for asyncio: ``data = await
        room.host_request_async({...})``. Submitted when called; the future resolves on
        the calling thread's running loop with the ``data`` dict, or fails with
        :class:`RequestError` / ``TimeoutError``. Cancelling it forgets the request."""
        loop = asyncio.get_running_loop()
        core = self._require()
        payload = _encode_json(request, "request")
        return _as_future(core, loop, lambda w: core.submit_host(self._bid, payload, w), timeout)

    def notify(self, peer_name: str, notification: Json) -> None:
        """Pass a notification ``peer_name``'s client sent (``leave``,
        ``updateTransport``, ...). No answer; one that cannot be applied comes back
        as a ``notificationError`` host event."""
        core = self._require()
        _check(_lib.lib().sfu_server_notify(core.handle, self._bid, _encode_id(peer_name, "peer_name"), _encode_json(notification, "notification")))

    def close_peer(self, peer_name: str) -> None:
        """Close one peer (synchronous): it gets ``closed``, the others
        ``peerClosed``. Raises :class:`SfuError` (``PEER_NOT_FOUND``,
        ``ROOM_NOT_FOUND``, ``SERVER_CLOSED``)."""
        core = self._require()
        _check(_lib.lib().sfu_server_close_peer(core.handle, self._bid, _encode_id(peer_name, "peer_name")))

    def close(self) -> None:
        """Close the room: every peer gets ``closed`` (delivered to
        ``on_notification``). Idempotent; a no-op once the server is closed.

        Waits (bounded, unless called from a handler) until everything the room
        produced has been handed to its handlers; after that none of them runs for
        this room again.
        """
        state, core = self._state, self._core
        if core is None:
            return
        with core.lock:
            if state.closed:
                return
            state.closed = True
            server_open = core.state == _OPEN
        if not server_open:
            return
        code = _lib.lib().sfu_server_close_room(core.handle, self._bid)
        if code not in (Result.OK, Result.ROOM_NOT_FOUND, Result.SERVER_CLOSED):
            raise SfuError(code, _lib.last_error())
        if code != Result.OK:
            core._forget_room(self._id, state)
            return
        # close_room returned: the room's last notifications are already queued for
        # the notifier. A request to the now unknown room is answered ("room not
        # found") through that same single queue, after them; on that answer the
        # handlers are dropped. (The header promises order per peer; this relies on
        # there being one notifier queue. Were a straggler to come later anyway, it
        # would only be dropped for want of a handler.)
        barrier = _BarrierWaiter(core, self._id, state)
        try:
            core.submit(self._bid, b"", b"{}", barrier)
        except SfuError:
            core._forget_room(self._id, state)
            return
        if not _in_callback():
            barrier.event.wait(ROOM_CLOSE_DRAIN_TIMEOUT)

    def _require(self) -> _Core:
        core = self._core
        if core is None or core.state != _OPEN:
            raise SfuError(Result.SERVER_CLOSED, "server closed")
        return core

    def __enter__(self) -> "Room":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sfu.Room {self._id!r}{' closed' if self.closed else ''}>"
