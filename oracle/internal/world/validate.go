package world

import (
	"fmt"
	"strings"

	"istio.io/istio/pilot/pkg/config/kube/crd"
)

// RejectedError is configuration Istio's own validation refuses: crd.ParseInputs runs schema.ValidateConfig,
// the validation istiod's admission webhook runs, and prefixes its error with "configuration is invalid: "
// (pilot/pkg/config/kube/crd/conversion.go). On a cluster the apply itself fails.
type RejectedError struct{ reason string }

func (e *RejectedError) Error() string {
	return "Istio's validation rejects this state's configuration, so a real apply fails at istiod's webhook: " + e.reason
}

const invalidPrefix = "configuration is invalid: "

// Validate parses the state's configuration as the fake istiod will, so that an object it cannot read is
// reported by name instead of failing the simulation.
func (w *World) Validate() error {
	if _, _, err := crd.ParseInputs(w.ConfigYAML); err != nil {
		if reason, ok := strings.CutPrefix(err.Error(), invalidPrefix); ok {
			return &RejectedError{reason: reason}
		}
		return fmt.Errorf("istiod cannot read this state's configuration: %v", err)
	}
	return nil
}
