"""Istio: installing and removing it per data-plane mode, reading what a cluster runs, the mesh config."""
