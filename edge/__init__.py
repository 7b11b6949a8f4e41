"""The edge: capture cameras, keep only the newest frame of each, encode and push to the broker."""
