"""tracewatch collector: receive, decode, normalise, redact, write."""
