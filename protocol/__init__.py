"""The wire protocol: the one module every anjeon role imports.

Everything that crosses a socket is defined here: message kinds and headers
(`wire`), the broker's five endpoints (`endpoints`), heartbeats and broker
liveness (`heartbeat`), drop accounting (`drops`) and socket defaults
(`sockets`). docs/protocol.md describes the same thing for other languages.
"""
