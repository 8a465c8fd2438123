"""Command-line tools of sbp_tf (benchmark, reproduction scripts)."""
