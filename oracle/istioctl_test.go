package oracle

import (
	"encoding/json"
	"flag"
	"testing"
)

var (
	istioctlFlag    = flag.String("oracle.istioctl", "", "one istioctl command line, as a JSON array of arguments")
	istioctlOutFlag = flag.String("oracle.istioctl-out", "", "where to write its stdout, stderr and exit code (JSON)")
)

// TestIstioctl runs one command line of this branch's istioctl in this process (istioctl's own root
// command), for callers that need istioctl itself — e.g. `analyze` against a live API server.
func TestIstioctl(t *testing.T) {
	if *istioctlFlag == "" {
		t.Skip("no -oracle.istioctl given")
	}
	var args []string
	if err := json.Unmarshal([]byte(*istioctlFlag), &args); err != nil {
		t.Fatalf("-oracle.istioctl: %v", err)
	}
	stdout, stderr, code := RunIstioctl(args...)
	writeJSON(t, *istioctlOutFlag, map[string]any{"stdout": stdout, "stderr": stderr, "exitCode": code})
}
