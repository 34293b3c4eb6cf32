"""The Kubernetes API as the harness uses it: connection, server-side apply, status, exec and logs, strict
offline validation."""
