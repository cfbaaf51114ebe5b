"""Usage accounting: per-session samples of cumulative counters, hourly rollups, queries and plots."""
