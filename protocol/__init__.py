"""The wire protocol: the one package every anjeon role imports.

Everything that crosses a socket is defined here: message kinds, headers and
limits (`wire`), the typed decoder of every kind (`messages`), the broker's
five endpoints (`endpoints`), socket defaults and what a socket error means
(`sockets`), CURVE keys (`security`), heartbeats and broker liveness
(`heartbeat`), drop counters and rates (`stats`), the one "is this result
newer" rule (`freshness`), and the client library every subscriber uses
(`client`: typed subscribers in sync and asyncio flavours, a publisher, the
history client). docs/protocol.md describes the wire for other languages,
docs/python-api.md the client library.
"""
