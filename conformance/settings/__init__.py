"""The run's settings: one validated object from the command line, and who ships the Istio under test."""
