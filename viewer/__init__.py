"""Subscribers that show results to people: two programs.

- ``viewer/watch/``: ``anjeon watch``, the terminal table of cameras and workers (or JSON lines, or
  recorded JPEGs);
- ``viewer/console/``: ``anjeon viewer``, the operator's web console (live grid, alarms, history,
  zone editor, reports).
"""
