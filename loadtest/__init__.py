"""`anjeon loadtest`: synthetic cameras and a measuring subscriber (issue 4)."""
