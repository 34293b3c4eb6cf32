package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Resource is one object of an apply action, as sent to the API server.
type Resource struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	Object     map[string]any
}

// Group is the API group of the object ("" for the core group).
func (r Resource) Group() string {
	if i := strings.Index(r.APIVersion, "/"); i >= 0 {
		return r.APIVersion[:i]
	}
	return ""
}

func (r Resource) key() string {
	return r.Group() + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

func (r Resource) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func refKey(ref objectRef) string {
	g := ""
	if i := strings.Index(ref.APIVersion, "/"); i >= 0 {
		g = ref.APIVersion[:i]
	}
	return g + "/" + ref.Kind + "/" + ref.Namespace + "/" + ref.Name
}

func parseResource(raw json.RawMessage) (Resource, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Resource{}, err
	}
	r := Resource{Object: obj}
	r.APIVersion, _ = obj["apiVersion"].(string)
	r.Kind, _ = obj["kind"].(string)
	if md, ok := obj["metadata"].(map[string]any); ok {
		r.Name, _ = md["name"].(string)
		r.Namespace, _ = md["namespace"].(string)
	}
	if r.APIVersion == "" || r.Kind == "" || r.Name == "" {
		return Resource{}, fmt.Errorf("object without apiVersion, kind or metadata.name")
	}
	return r, nil
}

// State is the configuration in force at one probe: the mesh's outbound policy and every object applied
// and not yet deleted, in the order of their first apply.
type State struct {
	OutboundPolicy string
	Resources      []Resource
	// Adaptations names the apply actions that are the harness's adaptation rather than documented steps.
	Adaptations []string
}

func (s *State) clone() *State {
	c := &State{OutboundPolicy: s.OutboundPolicy}
	c.Resources = append(c.Resources, s.Resources...)
	c.Adaptations = append(c.Adaptations, s.Adaptations...)
	return c
}

func (s *State) apply(r Resource) {
	for i := range s.Resources {
		if s.Resources[i].key() == r.key() {
			s.Resources[i] = r
			return
		}
	}
	s.Resources = append(s.Resources, r)
}

func (s *State) remove(ref objectRef) bool {
	k := refKey(ref)
	for i := range s.Resources {
		if s.Resources[i].key() == k {
			s.Resources = append(s.Resources[:i], s.Resources[i+1:]...)
			return true
		}
	}
	return false
}

// Fingerprint identifies equal states so that one simulation serves every probe made in it.
func (s *State) Fingerprint(mode string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", mode, s.OutboundPolicy)
	for _, r := range s.Resources {
		b, _ := json.Marshal(r.Object)
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ProbePoint is a probe action with the state it runs in.
type ProbePoint struct {
	Action Action
	State  *State
}

// Replay walks a check's actions in order and returns every probe with the configuration in force.
func Replay(p *Plan, c *Check) ([]ProbePoint, error) {
	st := &State{OutboundPolicy: p.initialOutboundPolicy()}
	var points []ProbePoint
	probes := map[string]bool{}
	for _, a := range c.Actions {
		switch a.Type {
		case "mesh":
			st = st.clone()
			st.OutboundPolicy = a.OutboundTrafficPolicy
		case "apply":
			st = st.clone()
			for i, raw := range a.Resources {
				r, err := parseResource(raw)
				if err != nil {
					return nil, fmt.Errorf("check %s action %d resource %d: %w", c.ID, a.Seq, i, err)
				}
				st.apply(r)
			}
			if a.Adaptation != "" {
				st.Adaptations = append(st.Adaptations, a.Adaptation)
			}
		case "delete":
			st = st.clone()
			for i, raw := range a.Resources {
				var ref objectRef
				if err := json.Unmarshal(raw, &ref); err != nil {
					return nil, fmt.Errorf("check %s action %d reference %d: %w", c.ID, a.Seq, i, err)
				}
				st.remove(ref)
			}
		case "probe":
			probes[a.Probe] = true
			points = append(points, ProbePoint{Action: a, State: st})
		case "log":
			// Log assertions are judged by the Python side against the predicted hops; a log for a probe
			// that has not run is a malformed plan.
			if !probes[a.Probe] {
				return nil, fmt.Errorf("check %s action %d: log for unknown probe %q", c.ID, a.Seq, a.Probe)
			}
		case "wait":
		default:
			return nil, fmt.Errorf("check %s action %d: unknown action type %q", c.ID, a.Seq, a.Type)
		}
	}
	return points, nil
}
