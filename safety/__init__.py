"""`anjeon safety`: tracking, zones, rules, events, evidence (snapshots, clips), alerts and reports (docs/safety.md)."""
