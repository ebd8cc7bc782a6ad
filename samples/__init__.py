"""tracewatch samples: a deterministic two-week set of LLM traces with known ground truth.

Entry point: ``samples.generate.generate_samples``; read the truth back with
``samples.ground_truth.load_ground_truth``. See ``sample_traces/README.md`` for the data set.
"""
