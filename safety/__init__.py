"""The safety domain: tracking, zones, rules, events, alerts (issue 6)."""
