"""Container images: references, the image list (``manifests/images.yaml``), mirrors (``--image-map``),
registry digests, and loading into kind (``python -m conformance.images``)."""
