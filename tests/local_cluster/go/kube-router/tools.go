//go:build tools

// Package tools pins what tests/local_cluster builds from github.com/cloudnativelabs/kube-router/v2 v2.1.0; it is never compiled.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
