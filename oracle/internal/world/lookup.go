package world

import (
	"fmt"
	"sort"
	"strings"

	"egress-conformance.io/oracle/internal/plan"
)

// What the walk asks of the state beyond what istiod is given: Secrets (their presence only) and
// NetworkPolicies (CNI enforces them, not Envoy).

// HasSecret tells whether the state holds the Secret an SDS name refers to (name or name-cacert).
func (w *World) HasSecret(ns, name string) bool {
	for _, r := range w.State.Resources {
		if r.Kind == "Secret" && r.Group() == "" && r.Namespace == ns && (r.Name == name || r.Name+"-cacert" == name) {
			return true
		}
	}
	return false
}

// NetworkPolicyNote names NetworkPolicies that select a workload: their enforcement is outside the oracle.
func (w *World) NetworkPolicyNote(wl plan.Workload) string {
	var names []string
	for _, np := range w.networkPolicies {
		if np.Namespace != wl.Namespace {
			continue
		}
		sel, _ := nested(np.Object, "spec", "podSelector").(map[string]any)
		if selectorMatches(sel, wl.Labels) {
			names = append(names, np.Namespace+"/"+np.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return "NetworkPolicy " + strings.Join(names, ", ") + " selects " + wl.Ref + ": its enforcement (CNI) is outside the oracle"
}

func selectorMatches(sel map[string]any, labels map[string]string) bool {
	if ml, ok := sel["matchLabels"].(map[string]any); ok {
		for k, v := range ml {
			if labels[k] != fmt.Sprint(v) {
				return false
			}
		}
	}
	if exprs, ok := sel["matchExpressions"].([]any); ok {
		for _, x := range exprs {
			m, _ := x.(map[string]any)
			key, _ := m["key"].(string)
			op, _ := m["operator"].(string)
			vals, _ := m["values"].([]any)
			v, has := labels[key]
			in := false
			for _, cand := range vals {
				if fmt.Sprint(cand) == v {
					in = true
				}
			}
			switch op {
			case "In":
				if !has || !in {
					return false
				}
			case "NotIn":
				if has && in {
					return false
				}
			case "Exists":
				if !has {
					return false
				}
			case "DoesNotExist":
				if has {
					return false
				}
			}
		}
	}
	return true
}
