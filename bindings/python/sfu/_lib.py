"""Loading libsfu and declaring its C functions (include/sfu.h), by hand.

Nothing here holds state beyond the loaded library; the object model is in
``_server.py``. Every function gets ``argtypes`` and ``restype``. ``ctypes.CDLL``
releases the GIL around each foreign call, which matters: ``sfu_server_free``
blocks until the library's notifier thread has finished calling back into Python.
"""

from __future__ import annotations

import ctypes
import enum
import os
import sys
import threading
from pathlib import Path
from typing import List, Optional

__all__ = ["Result", "EventKind", "LogLevel", "EVENT_FN", "FREE_FN", "LOG_FN", "lib", "library_path", "LIBRARY_ENV"]

#: Environment variable naming the shared library (a file) or a directory holding it.
LIBRARY_ENV = "SFU_LIBRARY_PATH"


class Result(enum.IntEnum):
    """``sfu_result``: why a call failed (``OK`` is never raised)."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_UTF8 = 2
    INVALID_CONFIG = 3
    INVALID_ARGUMENT = 4
    ROOM_EXISTS = 5
    ROOM_NOT_FOUND = 6
    PEER_NOT_FOUND = 7
    SERVER_CLOSED = 8
    IO = 9
    INTERNAL = 10


class EventKind(enum.IntEnum):
    """``sfu_event_kind``: what a callback invocation carries."""

    RESPONSE = 0
    NOTIFICATION = 1
    HOST = 2
    #: The answer to a host request (``sfu_server_host_request``); empty peer name.
    HOST_RESPONSE = 3


class LogLevel(enum.IntEnum):
    """``sfu_log_level``: the severity of a log record."""

    ERROR = 1
    WARN = 2
    DEBUG = 3


# typedef void (*sfu_event_fn)(void *userdata, sfu_event_kind kind, const char *room_id,
#     const char *peer_name, uint64_t request_id, const char *json, size_t json_len);
# `json` is declared as a raw pointer so that it is copied with string_at(ptr, len);
# room_id / peer_name (c_char_p) are copied to bytes by ctypes during the call.
EVENT_FN = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_uint64,
    ctypes.c_void_p,
    ctypes.c_size_t,
)

# typedef void (*sfu_userdata_free_fn)(void *userdata);
FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

# typedef void (*sfu_log_fn)(void *userdata, sfu_log_level level, const char *target,
#     const char *message);
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p)


def _lib_names() -> List[str]:
    if sys.platform == "darwin":
        return ["libsfu.dylib"]
    if sys.platform == "win32":
        return ["sfu.dll"]
    return ["libsfu.so"]


def _candidates() -> List[Path]:
    """Where to look, in order: $SFU_LIBRARY_PATH; the package dir, where an installed
    package carries the library (``pip install`` builds it with cargo and bundles it);
    the repo's target/release found by walking up from this file and from the cwd (the
    package used from the source tree, without installing it)."""
    names = _lib_names()
    out: List[Path] = []
    env = os.environ.get(LIBRARY_ENV)
    if env:
        p = Path(env)
        if p.is_dir():
            out.extend(p / n for n in names)
        else:
            out.append(p)
        return out  # an explicit setting is the only candidate: no silent fallback
    here = Path(__file__).resolve().parent
    out.extend(here / n for n in names)
    seen = set()
    for start in (here, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if d in seen:
                continue
            seen.add(d)
            out.extend(d / "target" / "release" / n for n in names)
    return out


def library_path() -> Path:
    """The shared library that would be (or was) loaded. Raises ``OSError``."""
    cands = _candidates()
    for c in cands:
        if c.is_file():
            return c
    tried = "\n  ".join(str(c) for c in cands) or "(nothing)"
    raise OSError(
        f"libsfu not found; install the package with `pip install <checkout>/bindings/python` "
        f"(it builds and bundles the library), or build it with `cargo build --release`, or set "
        f"{LIBRARY_ENV} to the library file or its directory. Tried:\n  {tried}"
    )


def _declare(dll: ctypes.CDLL) -> ctypes.CDLL:
    c_char_p, c_void_p, c_int = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int

    dll.sfu_version.argtypes = []
    dll.sfu_version.restype = c_char_p

    dll.sfu_last_error.argtypes = []
    dll.sfu_last_error.restype = c_char_p

    dll.sfu_server_new.argtypes = [c_char_p, EVENT_FN, c_void_p, FREE_FN, ctypes.POINTER(c_void_p)]
    dll.sfu_server_new.restype = c_int

    dll.sfu_server_create_room.argtypes = [c_void_p, c_char_p, c_char_p]
    dll.sfu_server_create_room.restype = c_int

    dll.sfu_server_close_room.argtypes = [c_void_p, c_char_p]
    dll.sfu_server_close_room.restype = c_int

    dll.sfu_server_close_peer.argtypes = [c_void_p, c_char_p, c_char_p]
    dll.sfu_server_close_peer.restype = c_int

    dll.sfu_server_request.argtypes = [c_void_p, c_char_p, c_char_p, ctypes.c_uint64, c_char_p]
    dll.sfu_server_request.restype = c_int

    dll.sfu_server_notify.argtypes = [c_void_p, c_char_p, c_char_p, c_char_p]
    dll.sfu_server_notify.restype = c_int

    # Host requests (docs/PROTOCOL.md, "Host requests"): answered as HOST_RESPONSE.
    dll.sfu_server_host_request.argtypes = [c_void_p, c_char_p, ctypes.c_uint64, c_char_p]
    dll.sfu_server_host_request.restype = c_int

    dll.sfu_server_free.argtypes = [c_void_p]
    dll.sfu_server_free.restype = None

    dll.sfu_server_set_log_callback.argtypes = [c_void_p, LOG_FN, c_void_p, FREE_FN]
    dll.sfu_server_set_log_callback.restype = c_int

    # `out` as a raw pointer: the text is copied with string_at, then sfu_string_free.
    dll.sfu_server_metrics.argtypes = [c_void_p, ctypes.POINTER(c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    dll.sfu_server_metrics.restype = c_int

    dll.sfu_string_free.argtypes = [c_void_p]
    dll.sfu_string_free.restype = None
    return dll


_dll: Optional[ctypes.CDLL] = None
_dll_lock = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded library (loaded once, on first use)."""
    global _dll
    if _dll is None:
        with _dll_lock:
            if _dll is None:
                _dll = _declare(ctypes.CDLL(str(library_path())))
    return _dll


def last_error() -> str:
    """``sfu_last_error()`` of the calling thread, decoded."""
    raw = lib().sfu_last_error()
    return raw.decode("utf-8", "replace") if raw else ""
