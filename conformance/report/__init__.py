"""The conformance report, its Markdown summaries and the environment the run observed."""
