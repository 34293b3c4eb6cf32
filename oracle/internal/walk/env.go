// Package walk follows each probe of a state hop by hop through the xDS a fake istiod builds for it
// (pilot/pkg/simulation): the client's sidecar, the egress gateway, an ambient waypoint, down to the origin
// or to where Envoy stops the request. One file per hop, plus:
//
//   - env.go: the fake istiod of one state and the proxies built from it;
//   - predict.go: one probe's walk, from its client;
//   - request.go: the probe's request as each proxy receives it;
//   - hop.go: one proxy's handling of one call (listener, chain, route, RBAC, direct responses);
//   - next.go: where a proxy sends the request after routing (cluster, endpoint, transport);
//   - outcome.go: how a walk ends (errors, the origin).
package walk

import (
	"fmt"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/test"

	"egress-conformance.io/oracle/internal/plan"
	"egress-conformance.io/oracle/internal/world"
)

// proxySim is one proxy's xDS as istiod builds it, ready to walk requests through.
type proxySim struct {
	kind     string // sidecar | egress-gateway | waypoint
	workload string
	ip       string
	sim      *simulation.Simulation
	clusters map[string]*cluster.Cluster
	eds      map[string]*endpoint.ClusterLoadAssignment
}

// Env is a fake istiod holding one state of one check, and the proxies built from it.
type Env struct {
	t            *testing.T
	w            *world.World
	fake         *xds.FakeDiscoveryServer
	istioVersion string
	proxies      map[string]*proxySim
}

// meshConfigFor is the mesh config of a state: the plan's access log settings and the state's outbound
// traffic policy.
func meshConfigFor(p *plan.Plan, st *plan.State) *meshconfig.MeshConfig {
	m := mesh.DefaultMeshConfig()
	mode, ok := meshconfig.MeshConfig_OutboundTrafficPolicy_Mode_value[st.OutboundPolicy]
	if !ok {
		mode = int32(meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY)
	}
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_Mode(mode)}
	if v, ok := p.MeshConfig["accessLogFile"].(string); ok {
		m.AccessLogFile = v
	}
	if v, ok := p.MeshConfig["accessLogEncoding"].(string); ok && v == "JSON" {
		m.AccessLogEncoding = meshconfig.MeshConfig_JSON
	}
	return m
}

// NewEnv starts the fake istiod for a world; the proxies it builds announce istioVersion.
func NewEnv(t *testing.T, w *world.World, istioVersion string) *Env {
	test.SetForTest(t, &features.EnableAmbient, w.Check.Mode == "ambient")
	fake := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           w.ConfigYAML,
		KubernetesObjectString: w.KubeYAML,
		MeshConfig:             meshConfigFor(w.Plan, w.State),
	})
	return &Env{t: t, w: w, fake: fake, istioVersion: istioVersion, proxies: map[string]*proxySim{}}
}

// build returns the simulation of one proxy, building it on first use.
func (e *Env) build(kind, workload, ip string, p *model.Proxy) *proxySim {
	key := kind + "/" + workload
	if ps, ok := e.proxies[key]; ok {
		return ps
	}
	p.Metadata.IstioVersion = e.istioVersion
	p.Metadata.ClusterID = constants.DefaultClusterName
	p.IPAddresses = []string{ip}
	proxy := e.fake.SetupProxy(p)
	sim := simulation.NewSimulation(e.t, e.fake, proxy)
	sim.Listeners = withIndexedChains(sim.Listeners)
	ps := &proxySim{kind: kind, workload: workload, ip: ip, sim: sim,
		clusters: xdstest.ExtractClusters(sim.Clusters), eds: map[string]*endpoint.ClusterLoadAssignment{}}
	for _, cla := range e.fake.Endpoints(proxy) {
		ps.eds[cla.GetClusterName()] = cla
	}
	e.proxies[key] = ps
	return ps
}

// sidecar is the client workload's sidecar.
func (e *Env) sidecar(wl plan.Workload) *proxySim {
	return e.build("sidecar", wl.Ref, wl.IP, &model.Proxy{
		Type: model.SidecarProxy, ConfigNamespace: wl.Namespace, ID: world.PodName(wl) + "." + wl.Namespace, Labels: wl.Labels,
		Metadata: &model.NodeMetadata{Namespace: wl.Namespace, Labels: wl.Labels, ServiceAccount: wl.ServiceAccount},
	})
}

// gateway is the egress gateway's proxy.
func (e *Env) gateway() *proxySim {
	g := e.w.Plan.EgressGateway
	labels := world.GatewayLabels(g)
	return e.build("egress-gateway", g.Namespace+"/"+g.Name, e.w.GatewayPodIP, &model.Proxy{
		Type: model.Router, ConfigNamespace: g.Namespace, ID: g.Name + "-oracle." + g.Namespace, Labels: labels,
		Metadata: &model.NodeMetadata{Namespace: g.Namespace, Labels: labels, ServiceAccount: g.ServiceAccount},
	})
}

// waypoint is a waypoint's proxy.
func (e *Env) waypoint(wp world.Waypoint) *proxySim {
	labels := wp.PodLabels()
	return e.build("waypoint", wp.Ref(), wp.PodIP, &model.Proxy{
		Type: model.Waypoint, ConfigNamespace: wp.Namespace, ID: wp.Name + "-oracle." + wp.Namespace, Labels: labels,
		Metadata: &model.NodeMetadata{Namespace: wp.Namespace, Labels: labels, ServiceAccount: wp.Name},
	})
}

// chainSep separates a filter chain's own name from the index the oracle appends to it.
const chainSep = "#"

// withIndexedChains copies listeners with every filter chain renamed <name>#<index>: the simulation reports
// the matched chain by name, and many chains are unnamed; the index identifies the very chain (its RBAC
// filters in particular).
func withIndexedChains(ls []*listener.Listener) []*listener.Listener {
	out := make([]*listener.Listener, 0, len(ls))
	for _, l := range ls {
		c := proto.Clone(l).(*listener.Listener)
		for i, fc := range c.GetFilterChains() {
			fc.Name = fmt.Sprintf("%s%s%d", fc.GetName(), chainSep, i)
		}
		if dc := c.GetDefaultFilterChain(); dc != nil {
			dc.Name = dc.GetName() + chainSep + "default"
		}
		out = append(out, c)
	}
	return out
}

// chainName is a filter chain's own name, without the index withIndexedChains appended.
func chainName(indexed string) string {
	if i := strings.LastIndex(indexed, chainSep); i >= 0 {
		return indexed[:i]
	}
	return indexed
}
