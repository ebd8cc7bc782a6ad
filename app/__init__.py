"""tracewatch app."""
