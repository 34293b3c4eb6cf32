"""Foundations every layer uses: the one polling loop and convergence checks, named deadlines, bounded
processes, progress lines, secret scrubbing, YAML from ``manifests/``, pinned versions, Allure primitives."""
