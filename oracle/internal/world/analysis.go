package world

import "sort"

// AnalysisDocs are the documents istioctl analyze gets for one state: every applied object istiod would
// read, each with its namespace, plus the namespaces and the egress gateway's Service and Pod.
func (w *World) AnalysisDocs() []string {
	var docs []string
	var names []string
	for n := range w.namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		docs = append(docs, toYAML(map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": n, "labels": w.namespaces[n]},
		}))
	}
	if w.Check.Mode == "sidecar" {
		g := w.Plan.EgressGateway
		objs := gatewayObjects(g, w.GatewayPodIP, w.GatewaySvcIP)
		docs = append(docs, objs[0], objs[1])
	}
	for _, r := range w.State.Resources {
		if r.Namespace == w.Plan.ExternalWorld.Namespace && r.Namespace != "" {
			continue
		}
		switch classify(r) {
		case kindConfig:
			docs = append(docs, toYAML(r.Object))
		case kindKube:
			if r.Kind == "Namespace" {
				continue
			}
			if r.Kind == "Secret" {
				// Only the name matters to the analyzers; the key material stays out of the files.
				docs = append(docs, toYAML(map[string]any{"apiVersion": "v1", "kind": "Secret",
					"metadata": map[string]any{"name": r.Name, "namespace": r.Namespace}, "type": nested(r.Object, "type")}))
				continue
			}
			docs = append(docs, toYAML(r.Object))
		}
	}
	return docs
}
