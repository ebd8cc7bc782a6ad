"""tracewatch command line: wires the stages together."""
