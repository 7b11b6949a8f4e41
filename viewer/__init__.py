"""Subscribers that show results to people: the terminal watcher now, the web console later."""
