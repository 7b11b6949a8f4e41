"""`anjeon viewer`: the operator's web console.

- ``server``: the process (ViewerConfig, serve): wires bus, state, live hub and web app, runs uvicorn;
- ``bus``: its side of the ZeroMQ bus (pictures, status, events, tracks; history requests);
- ``state``: what it knows (pure data and logic, no sockets);
- ``live``: the WebSocket hub with per-browser backpressure;
- ``app`` + ``routes/``: the HTTP API, one router per OpenAPI tag, and ``static/``, the page;
- ``auth``, ``guard``: logins, Host/Origin checks and security headers;
- ``history``, ``zones``: event history paging and CSV; the zone editor's reading and writing of the site YAML.

Nothing is imported here, so ``anjeon.viewer.console.auth`` loads without the viewer extra (FastAPI).
"""
