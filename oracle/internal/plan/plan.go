// Package plan is the model of the plan.json the harness writes in plan mode
// (conformance/schemas/plan.schema.json), and the replay of a check's actions into the states its probes
// run in.
package plan

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Plan is the plan.json the harness writes in plan mode.
type Plan struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	HarnessVersion string         `json:"harnessVersion"`
	IstioVersion   string         `json:"istioVersion"`
	MeshConfig     map[string]any `json:"meshConfig"`
	ExternalWorld  ExternalWorld  `json:"externalWorld"`
	EgressGateway  EgressGateway  `json:"egressGateway"`
	Checks         []Check        `json:"checks"`
}

type ExternalWorld struct {
	Namespace      string            `json:"namespace"`
	Hosts          map[string]string `json:"hosts"`
	IngressAddress string            `json:"ingressAddress"`
}

// TLSModeLabel is the pod label that marks an Istio mTLS endpoint; EgressGateway.TLSModeLabel says whether
// the egress gateway's pods carry it.
const TLSModeLabel = "security.istio.io/tlsMode"

type EgressGateway struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"serviceAccount"`
	PodLabels      map[string]string `json:"podLabels"`
	Ports          []GatewayPort     `json:"ports"`
	TLSModeLabel   bool              `json:"tlsModeLabel"`
}

type GatewayPort struct {
	Name       string `json:"name"`
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort"`
	Protocol   string `json:"protocol,omitempty"`
}

type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type Workload struct {
	Ref            string            `json:"ref"`
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels"`
	ServiceAccount string            `json:"serviceAccount"`
	Dataplane      string            `json:"dataplane"`
	IP             string            `json:"ip"`
}

// objectRef names one object of a delete action.
type objectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
}

type Request struct {
	Method            string            `json:"method"`
	URL               string            `json:"url"`
	Headers           map[string]string `json:"headers"`
	Body              string            `json:"body,omitempty"`
	ClientCertificate bool              `json:"clientCertificate,omitempty"`
	CAFile            string            `json:"caFile,omitempty"`
	Display           string            `json:"display"`
}

type Expectation struct {
	Outcome string `json:"outcome"`
}

type LogProxy struct {
	Kind     string `json:"kind"`
	Workload string `json:"workload"`
}

// Action is one entry of a check's actions; which fields are set depends on Type.
type Action struct {
	Seq                   int                        `json:"seq"`
	Type                  string                     `json:"type"`
	Step                  string                     `json:"step"`
	OutboundTrafficPolicy string                     `json:"outboundTrafficPolicy,omitempty"`
	Sources               []string                   `json:"sources,omitempty"`
	Resources             []json.RawMessage          `json:"resources,omitempty"`
	Adaptation            string                     `json:"adaptation,omitempty"`
	Probe                 string                     `json:"probe,omitempty"`
	Client                string                     `json:"client,omitempty"`
	Request               *Request                   `json:"request,omitempty"`
	Expect                *Expectation               `json:"expect,omitempty"`
	Until                 string                     `json:"until,omitempty"`
	Control               bool                       `json:"control,omitempty"`
	Proxy                 *LogProxy                  `json:"proxy,omitempty"`
	Present               *bool                      `json:"present,omitempty"`
	Fields                map[string]json.RawMessage `json:"fields,omitempty"`
}

type Check struct {
	ID            string      `json:"id"`
	NodeID        string      `json:"nodeid"`
	Mode          string      `json:"mode"`
	Profile       string      `json:"profile"`
	Title         string      `json:"title"`
	Namespaces    []Namespace `json:"namespaces"`
	Workloads     []Workload  `json:"workloads"`
	Actions       []Action    `json:"actions"`
	NotApplicable string      `json:"notApplicable,omitempty"`
}

// Load reads and checks the parts of a plan the oracle relies on.
func Load(path string) (*Plan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	if p.APIVersion != "egress-conformance.io/v1alpha1" || p.Kind != "Plan" {
		return nil, fmt.Errorf("plan %s: apiVersion/kind %q/%q is not egress-conformance.io/v1alpha1 Plan", path, p.APIVersion, p.Kind)
	}
	for ci := range p.Checks {
		c := &p.Checks[ci]
		sort.SliceStable(c.Actions, func(i, j int) bool { return c.Actions[i].Seq < c.Actions[j].Seq })
		for _, a := range c.Actions {
			if a.Type == "probe" && (a.Request == nil || a.Expect == nil) {
				return nil, fmt.Errorf("plan %s: check %s action %d: probe without request or expect", path, c.ID, a.Seq)
			}
		}
	}
	return &p, nil
}

// Workload is the check's workload with that ref, nil if none.
func (c *Check) Workload(ref string) *Workload {
	for i := range c.Workloads {
		if c.Workloads[i].Ref == ref {
			return &c.Workloads[i]
		}
	}
	return nil
}

// OutboundTrafficPolicy of the plan's mesh config before any check changes it.
func (p *Plan) initialOutboundPolicy() string {
	if otp, ok := p.MeshConfig["outboundTrafficPolicy"].(map[string]any); ok {
		if mode, ok := otp["mode"].(string); ok && mode != "" {
			return mode
		}
	}
	return "ALLOW_ANY"
}
