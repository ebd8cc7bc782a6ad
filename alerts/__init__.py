"""tracewatch alerts."""
