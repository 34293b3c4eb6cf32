"""Unit and boundary tests of the harness itself (no cluster needed)."""
