"""Requests and their evidence: curl in a pod with typed outcomes, and Envoy's JSON access log."""
