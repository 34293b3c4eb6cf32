//go:build tools

// Package tools pins what tests/local_cluster builds from github.com/mccutchen/go-httpbin/v2 v2.15.0; it is never compiled.
package tools

import (
	_ "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin"
)
