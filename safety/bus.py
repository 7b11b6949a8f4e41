"""Events on the wire: live on the results bus (evt/CAM/) and history over a ROUTER socket.

Live:     [b"evt/CAM/", {"v":1, "kind":"event", "transition": "start"|"update"|"end", "event": {...}}]
          published from the safety service's PUB to the broker's results-in, so every
          subscriber of results-out can take `evt/` (all cameras) or `evt/gate/`
          (``anjeon.protocol.client.events``).
History:  a client (``anjeon.protocol.client.History``) sends one request (events_query, ack,
          clip_query, storage_query, report_query) to the service's ROUTER (safety/history.py) and
          gets one answer; event pages come newest first with a cursor for the next page.
docs/protocol.md ("The history socket") describes every field. This module holds the names the
service answers with; the client side is the protocol's.
"""

from __future__ import annotations

from anjeon.protocol import client, messages

EVENTS_QUERY, EVENTS = messages.EVENTS_QUERY, messages.EVENTS
ACK, ACKED = messages.ACK, messages.ACKED
CLIP_QUERY, CLIP = "clip_query", "clip"
STORAGE_QUERY, STORAGE = "storage_query", "storage"
REPORT_QUERY, REPORT = "report_query", "report"
ERROR = messages.ERROR
CLIP_MIME = "video/mp4"
HISTORY_OFFSET = client.HISTORY_OFFSET  # default history port: the broker's base port + 5, on the safety host
DEFAULT_HISTORY_HOST = "127.0.0.1"  # loopback unless --history-bind says otherwise
