// Package world models the cluster of one check in one state, as the fake istiod is given it: namespaces,
// workload pods, the egress gateway (Service, Pod, EndpointSlice), waypoints and every applied object; and
// answers what lies outside istiod (DNS of the external world, Secrets, NetworkPolicies).
package world

import (
	"fmt"
	"sort"
	"strings"

	"egress-conformance.io/oracle/internal/plan"
)

// What the oracle does with each kind of applied object.
const (
	kindConfig  = "config"  // Istio / Gateway API configuration: given to istiod's config store
	kindKube    = "kube"    // Kubernetes objects istiod watches: given to the fake cluster
	kindIgnored = "ignored" // objects that do not change routing (workloads come from the plan's workload list)
	kindPolicy  = "network-policy"
	kindUnknown = "unknown"
)

var configGroups = map[string]bool{
	"networking.istio.io":         true,
	"security.istio.io":           true,
	"telemetry.istio.io":          true,
	"extensions.istio.io":         true,
	"gateway.networking.k8s.io":   true,
	"gateway.networking.x-k8s.io": true,
}

func classify(r plan.Resource) string {
	g := r.Group()
	switch {
	case configGroups[g]:
		return kindConfig
	case g == "" && (r.Kind == "Namespace" || r.Kind == "Service" || r.Kind == "Secret" || r.Kind == "ConfigMap" || r.Kind == "Pod"):
		return kindKube
	case g == "discovery.k8s.io" && r.Kind == "EndpointSlice":
		return kindKube
	case g == "" && r.Kind == "ServiceAccount", g == "apps", g == "rbac.authorization.k8s.io", g == "policy":
		return kindIgnored
	case g == "networking.k8s.io" && r.Kind == "NetworkPolicy":
		return kindPolicy
	}
	return kindUnknown
}

// ClusterDomain is the trust and DNS domain of the modelled cluster.
const ClusterDomain = "cluster.local"

const (
	waypointClass   = "istio-waypoint"
	gatewayNameLbl  = "gateway.networking.k8s.io/gateway-name"
	managedLbl      = "gateway.istio.io/managed"
	meshController  = "istio.io-mesh-controller"
	autoAllocPrefix = "240.240.0."
)

// Waypoint is a Gateway API Gateway of class istio-waypoint, with the Service and address a real
// istiod's deployment controller would create for it.
type Waypoint struct {
	Name, Namespace string
	PodIP           string
	serviceIP       string
}

// Ref is the waypoint's namespace/name.
func (w Waypoint) Ref() string { return w.Namespace + "/" + w.Name }

// PodLabels are the labels of the waypoint's pod as its deployment controller sets them.
func (w Waypoint) PodLabels() map[string]string {
	return map[string]string{gatewayNameLbl: w.Name, managedLbl: meshController}
}

// World is one state turned into what the fake istiod is given.
type World struct {
	Check        *plan.Check
	Plan         *plan.Plan
	State        *plan.State
	ConfigYAML   string
	KubeYAML     string
	GatewayPodIP string
	GatewaySvcIP string
	Waypoints    []Waypoint
	// Unknown lists the applied objects of kinds the oracle does not model.
	Unknown []string
	// VIPs auto-allocated to ServiceEntry hosts (what istiod's IP allocator writes to status).
	AutoVIPs map[string]string

	namespaces      map[string]map[string]string // every namespace of the cluster, with its labels
	networkPolicies []plan.Resource
}

// Build models the cluster of one check in one state: namespaces, workload pods, the egress gateway
// (Service, Pod, EndpointSlice as the overlay installs it), waypoints, and every applied object.
func Build(p *plan.Plan, c *plan.Check, st *plan.State) *World {
	w := &World{Check: c, Plan: p, State: st, namespaces: map[string]map[string]string{}, AutoVIPs: map[string]string{}}
	pool := &ipPool{used: map[string]bool{}}
	for _, wl := range c.Workloads {
		pool.used[wl.IP] = true
	}
	for _, ip := range p.ExternalWorld.Hosts {
		pool.used[ip] = true
	}
	pool.used[p.ExternalWorld.IngressAddress] = true

	addNS := func(name string, labels map[string]string) {
		if name == "" || name == p.ExternalWorld.Namespace {
			return
		}
		if _, ok := w.namespaces[name]; !ok {
			w.namespaces[name] = map[string]string{"kubernetes.io/metadata.name": name}
		}
		for k, v := range labels {
			w.namespaces[name][k] = v
		}
	}
	addNS("istio-system", nil)
	for _, ns := range c.Namespaces {
		addNS(ns.Name, ns.Labels)
	}
	for _, wl := range c.Workloads {
		addNS(wl.Namespace, nil)
	}

	var config, kube []string
	autoIndex := 1
	for _, r := range st.Resources {
		if r.Namespace == p.ExternalWorld.Namespace && r.Namespace != "" {
			continue
		}
		if r.Kind == "Namespace" && r.Group() == "" {
			if r.Name == p.ExternalWorld.Namespace {
				continue
			}
			labels := map[string]string{}
			if md, ok := r.Object["metadata"].(map[string]any); ok {
				if l, ok := md["labels"].(map[string]any); ok {
					for k, v := range l {
						labels[k] = fmt.Sprint(v)
					}
				}
			}
			addNS(r.Name, labels)
			continue
		}
		addNS(r.Namespace, nil)
		switch classify(r) {
		case kindConfig:
			obj := r.Object
			if r.Kind == "ServiceEntry" {
				obj = w.withAutoAllocatedAddresses(obj, &autoIndex)
			}
			if r.Kind == "Gateway" && r.Group() == "gateway.networking.k8s.io" {
				if cls, _ := nested(obj, "spec", "gatewayClassName").(string); cls == waypointClass {
					wp := Waypoint{Name: r.Name, Namespace: r.Namespace,
						serviceIP: pool.take("10.96.250.", 20), PodIP: pool.take("10.244.250.", 20)}
					w.Waypoints = append(w.Waypoints, wp)
					obj = deepCopy(obj)
					obj["status"] = map[string]any{"addresses": []any{map[string]any{
						"type": "Hostname", "value": fmt.Sprintf("%s.%s.svc.%s", r.Name, r.Namespace, ClusterDomain),
					}}}
					kube = append(kube, waypointObjects(wp)...)
				}
			}
			config = append(config, toYAML(obj))
		case kindKube:
			if r.Kind == "Secret" {
				// Only its presence matters (credentialName); key material stays out of the fake cluster.
				continue
			}
			kube = append(kube, toYAML(r.Object))
		case kindIgnored:
			// Does not change routing.
		case kindPolicy:
			w.networkPolicies = append(w.networkPolicies, r)
		default:
			w.Unknown = append(w.Unknown, r.APIVersion+" "+r.String())
		}
	}

	var nsNames []string
	for n := range w.namespaces {
		nsNames = append(nsNames, n)
	}
	sort.Strings(nsNames)
	var nsDocs []string
	for _, n := range nsNames {
		nsDocs = append(nsDocs, toYAML(map[string]any{
			"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": n, "labels": w.namespaces[n]},
		}))
	}

	for _, wl := range c.Workloads {
		if wl.Namespace == p.ExternalWorld.Namespace {
			continue
		}
		kube = append(kube, workloadPod(wl))
	}
	if c.Mode == "sidecar" {
		w.GatewayPodIP = pool.take("10.244.250.", 10)
		w.GatewaySvcIP = pool.take("10.96.250.", 10)
		kube = append(kube, gatewayObjects(p.EgressGateway, w.GatewayPodIP, w.GatewaySvcIP)...)
	}

	w.ConfigYAML = strings.Join(config, "\n---\n")
	w.KubeYAML = strings.Join(append(nsDocs, kube...), "\n---\n")
	if c.Mode == "ambient" {
		// As upstream's waypoint tests do: the ambient index reads configuration from the cluster.
		w.KubeYAML = strings.Join(append(append(nsDocs, kube...), config...), "\n---\n")
	}
	return w
}

func nested(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// withAutoAllocatedAddresses writes status.addresses as istiod's IP allocator does for ServiceEntries
// without addresses (sidecars ignore them unless DNS capture is on; waypoints use them).
func (w *World) withAutoAllocatedAddresses(obj map[string]any, next *int) map[string]any {
	if a, ok := nested(obj, "spec", "addresses").([]any); ok && len(a) > 0 {
		return obj
	}
	if res, _ := nested(obj, "spec", "resolution").(string); res == "NONE" {
		return obj
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		if l, ok := md["labels"].(map[string]any); ok && strings.EqualFold(fmt.Sprint(l["networking.istio.io/enable-autoallocate-ip"]), "false") {
			return obj
		}
	}
	hosts, _ := nested(obj, "spec", "hosts").([]any)
	var addrs []any
	for _, h := range hosts {
		hs := fmt.Sprint(h)
		if strings.HasPrefix(hs, "*") {
			continue
		}
		ip := w.AutoVIPs[hs]
		if ip == "" {
			ip = fmt.Sprintf("%s%d", autoAllocPrefix, *next)
			*next++
			w.AutoVIPs[hs] = ip
		}
		addrs = append(addrs, map[string]any{"value": ip, "host": hs})
	}
	if len(addrs) == 0 {
		return obj
	}
	out := deepCopy(obj)
	out["status"] = map[string]any{"addresses": addrs}
	return out
}
