"""tracewatch samples."""
