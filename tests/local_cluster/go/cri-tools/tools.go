//go:build tools

// Package tools pins what tests/local_cluster builds from sigs.k8s.io/cri-tools v1.34.0; it is never compiled.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
