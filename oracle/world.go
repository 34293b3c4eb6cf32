package oracle

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
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

func classify(r Resource) string {
	g := r.group()
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

const (
	clusterDomain   = "cluster.local"
	waypointClass   = "istio-waypoint"
	gatewayNameLbl  = "gateway.networking.k8s.io/gateway-name"
	managedLbl      = "gateway.istio.io/managed"
	meshController  = "istio.io-mesh-controller"
	tlsModeLabel    = "security.istio.io/tlsMode"
	autoAllocPrefix = "240.240.0."
)

// Waypoint is a Gateway API Gateway of class istio-waypoint, with the Service and address a real
// istiod's deployment controller would create for it.
type Waypoint struct {
	Name, Namespace string
	ServiceIP       string
	PodIP           string
}

func (w Waypoint) Ref() string { return w.Namespace + "/" + w.Name }

// World is one state turned into what the fake istiod is given.
type World struct {
	Check           *Check
	Plan            *Plan
	State           *State
	ConfigYAML      string
	KubeYAML        string
	Namespaces      map[string]map[string]string
	GatewayPodIP    string
	GatewaySvcIP    string
	Waypoints       []Waypoint
	Ignored         []string
	Unknown         []string
	NetworkPolicies []Resource
	ExternalObjs    []string
	// VIPs auto-allocated to ServiceEntry hosts (what istiod's IP allocator writes to status).
	AutoVIPs map[string]string
}

type ipPool struct {
	used map[string]bool
}

func (p *ipPool) take(base string, start int) string {
	for i := start; i < 250; i++ {
		ip := fmt.Sprintf("%s%d", base, i)
		if !p.used[ip] {
			p.used[ip] = true
			return ip
		}
	}
	panic("address pool exhausted")
}

func toYAML(obj any) string {
	b, err := yaml.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func deepCopy(obj map[string]any) map[string]any {
	b, err := yaml.Marshal(obj)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// BuildWorld models the cluster of one check in one state: namespaces, workload pods, the egress gateway
// (Service, Pod, EndpointSlice as the overlay installs it), waypoints, and every applied object.
func BuildWorld(p *Plan, c *Check, st *State) *World {
	w := &World{Check: c, Plan: p, State: st, Namespaces: map[string]map[string]string{}, AutoVIPs: map[string]string{}}
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
		if _, ok := w.Namespaces[name]; !ok {
			w.Namespaces[name] = map[string]string{"kubernetes.io/metadata.name": name}
		}
		for k, v := range labels {
			w.Namespaces[name][k] = v
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
			w.ExternalObjs = append(w.ExternalObjs, r.String())
			continue
		}
		if r.Kind == "Namespace" && r.group() == "" {
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
			if r.Kind == "Gateway" && r.group() == "gateway.networking.k8s.io" {
				if cls, _ := nested(obj, "spec", "gatewayClassName").(string); cls == waypointClass {
					wp := Waypoint{Name: r.Name, Namespace: r.Namespace,
						ServiceIP: pool.take("10.96.250.", 20), PodIP: pool.take("10.244.250.", 20)}
					w.Waypoints = append(w.Waypoints, wp)
					obj = deepCopy(obj)
					obj["status"] = map[string]any{"addresses": []any{map[string]any{
						"type": "Hostname", "value": fmt.Sprintf("%s.%s.svc.%s", r.Name, r.Namespace, clusterDomain),
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
			w.Ignored = append(w.Ignored, r.String())
		case kindPolicy:
			w.NetworkPolicies = append(w.NetworkPolicies, r)
		default:
			w.Unknown = append(w.Unknown, r.APIVersion+" "+r.String())
		}
	}

	var nsNames []string
	for n := range w.Namespaces {
		nsNames = append(nsNames, n)
	}
	sort.Strings(nsNames)
	var nsDocs []string
	for _, n := range nsNames {
		nsDocs = append(nsDocs, toYAML(map[string]any{
			"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": n, "labels": w.Namespaces[n]},
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

func podName(wl Workload) string { return wl.Name + "-oracle" }

func workloadPod(wl Workload) string {
	annotations := map[string]string{}
	if wl.Dataplane == "sidecar" {
		annotations["sidecar.istio.io/status"] = `{"containers":["istio-proxy"],"initContainers":["istio-init"]}`
	}
	if wl.Dataplane == "ambient" {
		annotations["ambient.istio.io/redirection"] = "enabled"
	}
	sa := wl.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return toYAML(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": podName(wl), "namespace": wl.Namespace, "labels": wl.Labels, "annotations": annotations},
		"spec":     map[string]any{"serviceAccountName": sa, "nodeName": "oracle-node", "containers": []any{map[string]any{"name": "app", "image": "app"}}},
		"status": map[string]any{
			"phase":      "Running",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"podIP":      wl.IP,
			"podIPs":     []any{map[string]any{"ip": wl.IP}},
		},
	})
}

// gatewayLabels are the pod labels of the egress gateway; the tlsMode label follows tlsModeLabel.
func gatewayLabels(g EgressGateway) map[string]string {
	labels := copyMap(g.PodLabels)
	if g.TLSModeLabel {
		labels[tlsModeLabel] = "istio"
	} else {
		delete(labels, tlsModeLabel)
	}
	return labels
}

func gatewayObjects(g EgressGateway, podIP, svcIP string) []string {
	labels := gatewayLabels(g)
	selector := map[string]string{}
	for _, k := range []string{"app", "istio"} {
		if v, ok := labels[k]; ok {
			selector[k] = v
		}
	}
	var svcPorts, epPorts []any
	for _, pt := range g.Ports {
		proto := pt.Protocol
		if proto == "" {
			proto = "TCP"
		}
		svcPorts = append(svcPorts, map[string]any{"name": pt.Name, "port": pt.Port, "targetPort": pt.TargetPort, "protocol": proto})
		epPorts = append(epPorts, map[string]any{"name": pt.Name, "port": pt.TargetPort, "protocol": proto})
	}
	sa := g.ServiceAccount
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": g.Name + "-oracle", "namespace": g.Namespace, "labels": labels},
		"spec":     map[string]any{"serviceAccountName": sa, "nodeName": "oracle-node", "containers": []any{map[string]any{"name": "istio-proxy", "image": "proxyv2"}}},
		"status": map[string]any{
			"phase":      "Running",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"podIP":      podIP,
			"podIPs":     []any{map[string]any{"ip": podIP}},
		},
	}
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": g.Name, "namespace": g.Namespace, "labels": selector},
		"spec":     map[string]any{"clusterIP": svcIP, "ports": svcPorts, "selector": selector},
	}
	slice := map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata": map[string]any{"name": g.Name + "-oracle", "namespace": g.Namespace,
			"labels": map[string]string{"kubernetes.io/service-name": g.Name}},
		"addressType": "IPv4",
		"endpoints": []any{map[string]any{
			"addresses":  []string{podIP},
			"conditions": map[string]any{"ready": true},
			"targetRef":  map[string]any{"kind": "Pod", "name": g.Name + "-oracle", "namespace": g.Namespace},
		}},
		"ports": epPorts,
	}
	return []string{toYAML(pod), toYAML(svc), toYAML(slice)}
}

func waypointObjects(wp Waypoint) []string {
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": wp.Name, "namespace": wp.Namespace, "labels": map[string]string{
			managedLbl: meshController, gatewayNameLbl: wp.Name, "istio.io/gateway-name": wp.Name,
		}},
		"spec": map[string]any{
			"clusterIP": wp.ServiceIP,
			"ports":     []any{map[string]any{"appProtocol": "hbone", "name": "mesh", "port": 15008}},
			"selector":  map[string]string{gatewayNameLbl: wp.Name},
		},
	}
	we := map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": wp.Name + "-oracle", "namespace": wp.Namespace},
		"spec":     map[string]any{"address": wp.PodIP, "labels": map[string]string{gatewayNameLbl: wp.Name}, "serviceAccount": wp.Name},
	}
	return []string{toYAML(svc), toYAML(we)}
}

// ResolveHost is what a client's DNS gives for a URL host: an IP literal as is, an external host via
// the external world's hosts block. ok=false: the oracle does not know (DNS is outside it).
func (w *World) ResolveHost(h string) (string, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), true
	}
	if ip, ok := w.Plan.ExternalWorld.Hosts[h]; ok {
		return ip, true
	}
	if g := w.Plan.EgressGateway; w.GatewaySvcIP != "" {
		base := g.Name + "." + g.Namespace
		if h == base || h == base+".svc" || h == base+".svc."+clusterDomain {
			return w.GatewaySvcIP, true
		}
	}
	return "", false
}

// unknownServiceAddress stands for the ClusterIP of a Service of the external world: istiod does not see
// those Services, so any address no mesh Service or ServiceEntry claims behaves the same (TEST-NET-1).
const unknownServiceAddress = "192.0.2.10"

// externalWorldService tells whether a host names a Service in the external world's namespace.
func (w *World) externalWorldService(h string) bool {
	ns := w.Plan.ExternalWorld.Namespace
	for _, suffix := range []string{"." + ns + ".svc." + clusterDomain, "." + ns + ".svc", "." + ns} {
		if ns != "" && strings.HasSuffix(h, suffix) && !strings.Contains(strings.TrimSuffix(h, suffix), ".") {
			return true
		}
	}
	return false
}

// gatewayTargetPort is the egress gateway pod's port behind a Service port (0: no such port).
func (w *World) gatewayTargetPort(port int) int {
	for _, p := range w.Plan.EgressGateway.Ports {
		if p.Port == port {
			return p.TargetPort
		}
	}
	return 0
}

// ExternalHostOf names the external host an address belongs to ("" if none).
func (w *World) ExternalHostOf(ip string) string {
	if ip == w.Plan.ExternalWorld.IngressAddress {
		return "external mTLS ingress"
	}
	if ip == unknownServiceAddress {
		return "an external-world Service"
	}
	var names []string
	for h, a := range w.Plan.ExternalWorld.Hosts {
		if a == ip {
			names = append(names, h)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// RejectedError is configuration Istio's own validation refuses: crd.ParseInputs runs schema.ValidateConfig,
// the validation istiod's admission webhook runs, and prefixes its error with "configuration is invalid: "
// (pilot/pkg/config/kube/crd/conversion.go). On a cluster the apply itself fails.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string {
	return "Istio's validation rejects this state's configuration, so a real apply fails at istiod's webhook: " + e.Reason
}

const invalidPrefix = "configuration is invalid: "

// Validate parses the state's configuration as the fake istiod will, so that an object it cannot read is
// reported by name instead of failing the simulation.
func (w *World) Validate() error {
	if _, _, err := crd.ParseInputs(w.ConfigYAML); err != nil {
		if reason, ok := strings.CutPrefix(err.Error(), invalidPrefix); ok {
			return &RejectedError{Reason: reason}
		}
		return fmt.Errorf("istiod cannot read this state's configuration: %v", err)
	}
	return nil
}
