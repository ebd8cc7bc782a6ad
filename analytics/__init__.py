"""tracewatch analytics."""
