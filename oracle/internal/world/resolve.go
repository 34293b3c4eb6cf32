package world

import (
	"net/netip"
	"sort"
	"strings"
)

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
		if h == base || h == base+".svc" || h == base+".svc."+ClusterDomain {
			return w.GatewaySvcIP, true
		}
	}
	return "", false
}

// UnknownServiceAddress stands for the ClusterIP of a Service of the external world: istiod does not see
// those Services, so any address no mesh Service or ServiceEntry claims behaves the same (TEST-NET-1).
const UnknownServiceAddress = "192.0.2.10"

// ExternalWorldService tells whether a host names a Service in the external world's namespace.
func (w *World) ExternalWorldService(h string) bool {
	ns := w.Plan.ExternalWorld.Namespace
	for _, suffix := range []string{"." + ns + ".svc." + ClusterDomain, "." + ns + ".svc", "." + ns} {
		if ns != "" && strings.HasSuffix(h, suffix) && !strings.Contains(strings.TrimSuffix(h, suffix), ".") {
			return true
		}
	}
	return false
}

// GatewayTargetPort is the egress gateway pod's port behind a Service port (0: no such port).
func (w *World) GatewayTargetPort(port int) int {
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
	if ip == UnknownServiceAddress {
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
