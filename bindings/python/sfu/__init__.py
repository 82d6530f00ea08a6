"""sfu: Python binding (ctypes) for libsfu, an embeddable WebRTC SFU speaking the
mediasoup v2 client protocol.

A host passes every JSON message a browser sent to :meth:`Room.request` /
:meth:`Room.notify` with the peer that sent it, and delivers what the library
produces (:attr:`Room.on_notification`, called on a library thread) to that peer
verbatim::

    import sfu

    with sfu.Server({"numWorkers": 1, "rtcIPv4": "127.0.0.1"}) as server:
        room = server.create_room("r1")
        room.on_notification = lambda peer, msg: send_to(peer, msg)   # library thread
        caps = room.request("alice", {"method": "queryRoom", "target": "room"})

Log records of the library go to ``logging.getLogger("sfu")`` (the server's
``logLevel`` config decides which are produced); :meth:`Server.metrics` returns the
server's metrics as Prometheus text.

The shared library is found through ``$SFU_LIBRARY_PATH`` (the file or its
directory; when set, nothing else is tried), else next to this package (where
``pip install`` puts the library it built), else in ``target/release`` of a
directory above this package or the working directory (a source checkout).
"""

from ._lib import EventKind, LogLevel, Result, library_path
from ._server import (
    Error,
    RequestError,
    Room,
    Server,
    SfuError,
    live_userdata,
    userdata_free_count,
    version,
)

__version__ = "0.1.0"

__all__ = [
    "Server",
    "Room",
    "Error",
    "SfuError",
    "RequestError",
    "Result",
    "EventKind",
    "LogLevel",
    "version",
    "library_path",
    "userdata_free_count",
    "live_userdata",
]
