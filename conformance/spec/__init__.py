"""The check catalogue: what each check verifies, what its seed documents and what upstream Istio does."""
