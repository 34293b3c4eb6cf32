// Package manifest renders the project's IstioOperator overlays with the branch's own `istioctl manifest
// generate` and checks what they install against what the harness assumes.
package manifest

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"egress-conformance.io/oracle/internal/istioctl"
)

// Object is one document of `istioctl manifest generate`.
type Object map[string]any

func (o Object) kindName() (string, string, string) {
	md, _ := o["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	kind, _ := o["kind"].(string)
	return kind, ns, name
}

// Generate renders an IstioOperator overlay with `istioctl manifest generate`.
func Generate(overlay, tag, hub string) ([]Object, string, error) {
	stdout, stderr, code := istioctl.Run("manifest", "generate", "-f", overlay, "--set", "tag="+tag, "--set", "hub="+hub)
	if code != 0 {
		return nil, stderr, fmt.Errorf("istioctl manifest generate -f %s: exit %d: %s", overlay, code, stderr)
	}
	var objs []Object
	for _, doc := range strings.Split(stdout, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o Object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, stderr, fmt.Errorf("rendered document: %w", err)
		}
		if len(o) == 0 {
			continue
		}
		objs = append(objs, o)
	}
	return objs, stderr, nil
}
