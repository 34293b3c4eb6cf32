"""The cluster under test (an existing one or a kind cluster) and the pinned binaries that drive it."""
