"""The broker: five bound sockets, fresh-frame routing, the liveness registry, status snapshots."""
