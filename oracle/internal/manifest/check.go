package manifest

import (
	"fmt"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"egress-conformance.io/oracle/internal/plan"
)

// Summary is what TestManifestGenerate found in one rendered overlay.
type Summary struct {
	Overlay        string             `json:"overlay"`
	Objects        int                `json:"objects"`
	Kinds          map[string]int     `json:"kinds"`
	EgressPorts    []plan.GatewayPort `json:"egressGatewayPorts,omitempty"`
	EgressLabels   map[string]string  `json:"egressGatewayPodLabels,omitempty"`
	MeshConfig     map[string]any     `json:"meshConfig"`
	AmbientEnabled string             `json:"pilotEnableAmbient,omitempty"`
	Failures       []string           `json:"failures"`
}

func find(objs []Object, kind, ns, name string) Object {
	for _, o := range objs {
		k, n, nm := o.kindName()
		if k == kind && (ns == "" || n == ns) && nm == name {
			return o
		}
	}
	return nil
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }

func toInt(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return -1
}

func meshOf(objs []Object) (map[string]any, error) {
	cm := find(objs, "ConfigMap", "istio-system", "istio")
	if cm == nil {
		return nil, fmt.Errorf("ConfigMap istio-system/istio not rendered")
	}
	raw, _ := asMap(cm["data"])["mesh"].(string)
	var mesh map[string]any
	if err := yaml.Unmarshal([]byte(raw), &mesh); err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	return mesh, nil
}

func envOf(dep Object, container, name string) string {
	for _, c := range asList(asMap(asMap(asMap(dep["spec"])["template"])["spec"])["containers"]) {
		cm := asMap(c)
		if container != "" && cm["name"] != container {
			continue
		}
		for _, e := range asList(cm["env"]) {
			em := asMap(e)
			if em["name"] == name {
				v, _ := em["value"].(string)
				return v
			}
		}
	}
	return ""
}

// checkMesh asserts the overlay's meshConfig: JSON access log on stdout and the discoverySelectors rule
// that hides the external world's namespace from istiod.
func checkMesh(s *Summary, mesh map[string]any) {
	s.MeshConfig = map[string]any{"accessLogFile": mesh["accessLogFile"], "accessLogEncoding": mesh["accessLogEncoding"],
		"discoverySelectors": mesh["discoverySelectors"]}
	if mesh["accessLogFile"] != "/dev/stdout" {
		s.Failures = append(s.Failures, fmt.Sprintf("mesh accessLogFile = %v, want /dev/stdout", mesh["accessLogFile"]))
	}
	if mesh["accessLogEncoding"] != "JSON" {
		s.Failures = append(s.Failures, fmt.Sprintf("mesh accessLogEncoding = %v, want JSON", mesh["accessLogEncoding"]))
	}
	ok := false
	for _, sel := range asList(mesh["discoverySelectors"]) {
		for _, ex := range asList(asMap(sel)["matchExpressions"]) {
			em := asMap(ex)
			if em["key"] == "egress-conformance/external-world" && em["operator"] == "DoesNotExist" {
				ok = true
			}
		}
	}
	if !ok {
		s.Failures = append(s.Failures, "mesh discoverySelectors lack matchExpressions {key: egress-conformance/external-world, operator: DoesNotExist}")
	}
}

// Summarize counts an overlay's rendered kinds and checks what both overlays must render: the mesh config
// and istiod.
func Summarize(overlay string, objs []Object) *Summary {
	s := &Summary{Overlay: filepath.Base(overlay), Objects: len(objs), Kinds: map[string]int{}, Failures: []string{}}
	for _, o := range objs {
		k, _, _ := o.kindName()
		s.Kinds[k]++
	}
	if mesh, err := meshOf(objs); err != nil {
		s.Failures = append(s.Failures, err.Error())
	} else {
		checkMesh(s, mesh)
	}
	if find(objs, "Deployment", "istio-system", "istiod") == nil {
		s.Failures = append(s.Failures, "Deployment istio-system/istiod not rendered")
	}
	return s
}

// CheckSidecarOverlay checks the sidecar overlay's egress gateway: its Service ports and pod labels.
func (s *Summary) CheckSidecarOverlay(objs []Object) {
	svc := find(objs, "Service", "istio-system", "istio-egressgateway")
	dep := find(objs, "Deployment", "istio-system", "istio-egressgateway")
	if svc == nil || dep == nil {
		s.Failures = append(s.Failures, "egress gateway Service or Deployment istio-system/istio-egressgateway not rendered")
		return
	}
	for _, p := range asList(asMap(svc["spec"])["ports"]) {
		pm := asMap(p)
		name, _ := pm["name"].(string)
		s.EgressPorts = append(s.EgressPorts, plan.GatewayPort{Name: name, Port: toInt(pm["port"]), TargetPort: toInt(pm["targetPort"])})
	}
	want := []plan.GatewayPort{{Name: "http2", Port: 80, TargetPort: 8080}, {Name: "https", Port: 443, TargetPort: 8443}, {Name: "https-444", Port: 444, TargetPort: 8444}}
	for _, w := range want {
		found := false
		for _, g := range s.EgressPorts {
			if g.Name == w.Name && g.Port == w.Port && g.TargetPort == w.TargetPort {
				found = true
			}
		}
		if !found {
			s.Failures = append(s.Failures, fmt.Sprintf("egress gateway Service lacks port %s %d->%d (has %v)", w.Name, w.Port, w.TargetPort, s.EgressPorts))
		}
	}
	s.EgressLabels = map[string]string{}
	for k, v := range asMap(asMap(asMap(asMap(dep["spec"])["template"])["metadata"])["labels"]) {
		s.EgressLabels[k] = fmt.Sprint(v)
	}
	if s.EgressLabels["app"] != "istio-egressgateway" || s.EgressLabels["istio"] != "egressgateway" {
		s.Failures = append(s.Failures, fmt.Sprintf("egress gateway pod labels %v lack app=istio-egressgateway, istio=egressgateway", s.EgressLabels))
	}
	if _, ok := s.EgressLabels[plan.TLSModeLabel]; ok {
		s.Failures = append(s.Failures, "egress gateway pods carry "+plan.TLSModeLabel+" (upstream's chart does not)")
	}
}

// CheckAmbientOverlay checks the ambient overlay: ztunnel, the CNI node agent, istiod with ambient on, no
// egress gateway.
func (s *Summary) CheckAmbientOverlay(objs []Object) {
	if find(objs, "DaemonSet", "istio-system", "ztunnel") == nil {
		s.Failures = append(s.Failures, "DaemonSet istio-system/ztunnel not rendered")
	}
	if find(objs, "DaemonSet", "istio-system", "istio-cni-node") == nil {
		s.Failures = append(s.Failures, "DaemonSet istio-system/istio-cni-node not rendered")
	}
	if dep := find(objs, "Deployment", "istio-system", "istiod"); dep != nil {
		s.AmbientEnabled = envOf(dep, "discovery", "PILOT_ENABLE_AMBIENT")
		if s.AmbientEnabled != "true" {
			s.Failures = append(s.Failures, "istiod PILOT_ENABLE_AMBIENT = "+s.AmbientEnabled+", want true")
		}
	}
	if find(objs, "Deployment", "istio-system", "istio-egressgateway") != nil {
		s.Failures = append(s.Failures, "the ambient overlay renders an egress gateway Deployment")
	}
}

// CheckPlanGateway compares the plan's egressGateway (what the harness believes the overlay installs)
// with the rendered one.
func (s *Summary) CheckPlanGateway(p *plan.Plan) {
	g := p.EgressGateway
	for _, want := range g.Ports {
		found := false
		for _, got := range s.EgressPorts {
			if got.Port == want.Port && got.TargetPort == want.TargetPort && got.Name == want.Name {
				found = true
			}
		}
		if !found {
			s.Failures = append(s.Failures, fmt.Sprintf("plan egressGateway port %s %d->%d is not rendered", want.Name, want.Port, want.TargetPort))
		}
	}
	_, rendered := s.EgressLabels[plan.TLSModeLabel]
	if g.TLSModeLabel != rendered {
		s.Failures = append(s.Failures, fmt.Sprintf("plan egressGateway.tlsModeLabel=%v but the rendered pods have it: %v", g.TLSModeLabel, rendered))
	}
	for k, v := range g.PodLabels {
		if k == plan.TLSModeLabel {
			continue
		}
		if s.EgressLabels[k] != v {
			s.Failures = append(s.Failures, fmt.Sprintf("plan egressGateway pod label %s=%s, rendered %q", k, v, s.EgressLabels[k]))
		}
	}
}
