package oracle

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

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
)

// proxySim is one proxy's xDS as istiod builds it, ready to walk requests through.
type proxySim struct {
	kind     string // sidecar | egress-gateway | waypoint
	workload string
	ip       string
	proxy    *model.Proxy
	sim      *simulation.Simulation
	clusters map[string]*cluster.Cluster
	eds      map[string]*endpoint.ClusterLoadAssignment
}

// stateEnv is a fake istiod holding one state of one check.
type stateEnv struct {
	t            *testing.T
	w            *World
	fake         *xds.FakeDiscoveryServer
	istioVersion string
	proxies      map[string]*proxySim
}

func meshConfigFor(p *Plan, st *State) *meshconfig.MeshConfig {
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

func newStateEnv(t *testing.T, w *World, istioVersion string) *stateEnv {
	test.SetForTest(t, &features.EnableAmbient, w.Check.Mode == "ambient")
	fake := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           w.ConfigYAML,
		KubernetesObjectString: w.KubeYAML,
		MeshConfig:             meshConfigFor(w.Plan, w.State),
	})
	return &stateEnv{t: t, w: w, fake: fake, istioVersion: istioVersion, proxies: map[string]*proxySim{}}
}

func (e *stateEnv) build(kind, workload, ip string, p *model.Proxy) *proxySim {
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
	ps := &proxySim{kind: kind, workload: workload, ip: ip, proxy: proxy, sim: sim,
		clusters: xdstest.ExtractClusters(sim.Clusters), eds: map[string]*endpoint.ClusterLoadAssignment{}}
	for _, cla := range e.fake.Endpoints(proxy) {
		ps.eds[cla.GetClusterName()] = cla
	}
	e.proxies[key] = ps
	return ps
}

func (e *stateEnv) sidecar(wl Workload) *proxySim {
	return e.build("sidecar", wl.Ref, wl.IP, &model.Proxy{
		Type: model.SidecarProxy, ConfigNamespace: wl.Namespace, ID: podName(wl) + "." + wl.Namespace, Labels: wl.Labels,
		Metadata: &model.NodeMetadata{Namespace: wl.Namespace, Labels: wl.Labels, ServiceAccount: wl.ServiceAccount},
	})
}

func (e *stateEnv) gateway() *proxySim {
	g := e.w.Plan.EgressGateway
	labels := gatewayLabels(g)
	return e.build("egress-gateway", g.Namespace+"/"+g.Name, e.w.GatewayPodIP, &model.Proxy{
		Type: model.Router, ConfigNamespace: g.Namespace, ID: g.Name + "-oracle." + g.Namespace, Labels: labels,
		Metadata: &model.NodeMetadata{Namespace: g.Namespace, Labels: labels, ServiceAccount: g.ServiceAccount},
	})
}

func (e *stateEnv) waypoint(wp Waypoint) *proxySim {
	labels := map[string]string{gatewayNameLbl: wp.Name, managedLbl: meshController}
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

func chainName(indexed string) string {
	if i := strings.LastIndex(indexed, chainSep); i >= 0 {
		return indexed[:i]
	}
	return indexed
}

// parsedRequest is a probe's curl request as the client sends it.
type parsedRequest struct {
	scheme, host, path, method, authority string
	port                                  int
	headers                               map[string]string
}

func parseRequest(r *Request) (parsedRequest, error) {
	raw := r.URL
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return parsedRequest{}, err
	}
	pr := parsedRequest{scheme: u.Scheme, host: u.Hostname(), path: u.RequestURI(), method: strings.ToUpper(r.Method), headers: map[string]string{}}
	if pr.method == "" {
		pr.method = "GET"
	}
	switch {
	case u.Port() != "":
		pr.port, _ = strconv.Atoi(u.Port())
	case u.Scheme == "https":
		pr.port = 443
	case u.Scheme == "http":
		pr.port = 80
	default:
		return pr, fmt.Errorf("scheme %q not predicted", u.Scheme)
	}
	pr.authority = u.Host
	for k, v := range r.Headers {
		pr.headers[strings.ToLower(k)] = v
	}
	if h, ok := pr.headers["host"]; ok {
		pr.authority = h
	}
	return pr, nil
}

func (pr parsedRequest) tls() bool { return pr.scheme == "https" }

func (pr parsedRequest) httpHeaders() http.Header {
	h := http.Header{}
	for k, v := range pr.headers {
		if k == "host" {
			continue
		}
		h.Set(k, v)
	}
	return h
}

// rbacHeaders are the request headers as an Envoy RBAC filter sees them.
func (pr parsedRequest) rbacHeaders() map[string]string {
	h := map[string]string{}
	for k, v := range pr.headers {
		h[k] = v
	}
	h[":method"] = pr.method
	h[":authority"] = pr.authority
	h[":path"] = pr.path
	delete(h, "host")
	return h
}

func spiffe(ns, sa string) string {
	if sa == "" {
		sa = "default"
	}
	return "spiffe://" + clusterDomain + "/ns/" + ns + "/sa/" + sa
}

func callDesc(c simulation.Call, method, principal string) *CallDesc {
	c = c.FillDefaults()
	return &CallDesc{
		Address: c.Address, Port: c.Port, Protocol: string(c.Protocol), TLS: string(c.TLS), SNI: c.Sni, ALPN: c.Alpn,
		Host: c.Headers.Get("Host"), Path: c.Path, Method: method, Principal: principal,
	}
}

// hopRun is one proxy's handling of one call.
type hopRun struct {
	ps     *proxySim
	call   simulation.Call
	res    simulation.Result
	chains []*listener.FilterChain
	isHTTP bool
}

func (ps *proxySim) run(call simulation.Call) hopRun {
	call.Headers = call.Headers.Clone()
	if call.Headers == nil {
		call.Headers = http.Header{}
	}
	res := ps.sim.Run(call)
	hr := hopRun{ps: ps, call: call, res: res}
	if res.ListenerMatched != "" && res.FilterChainMatched != "" {
		for _, l := range ps.sim.Listeners {
			if l.GetName() != res.ListenerMatched {
				continue
			}
			for _, fc := range l.GetFilterChains() {
				if fc.GetName() == res.FilterChainMatched {
					hr.chains = append(hr.chains, fc)
				}
			}
			if dc := l.GetDefaultFilterChain(); dc != nil && dc.GetName() == res.FilterChainMatched {
				hr.chains = append(hr.chains, dc)
			}
		}
	}
	hr.isHTTP = res.VirtualHostMatched != "" || errors.Is(res.Error, simulation.ErrNoVirtualHost)
	for _, fc := range hr.chains {
		for _, f := range fc.GetFilters() {
			if f.GetName() == "envoy.filters.network.http_connection_manager" {
				hr.isHTTP = true
			}
		}
	}
	return hr
}

// rbac evaluates the matched chain's RBAC filters; several chains of the same name must agree.
func (hr hopRun) rbac(in rbacInput) *RBACResult {
	if len(hr.chains) == 0 {
		return nil
	}
	var res *RBACResult
	for _, fc := range hr.chains {
		r := EvaluateRBAC(fc, in)
		if res != nil && (res.Decision != r.Decision || res.Policy != r.Policy) {
			return &RBACResult{Decision: "unknown", Reason: "several filter chains named " + chainName(hr.res.FilterChainMatched) + " disagree"}
		}
		res = r
	}
	if res != nil && len(res.Filters) == 0 {
		return nil
	}
	return res
}

func (hr hopRun) hop() Hop {
	h := Hop{
		Proxy: hr.ps.kind, Workload: hr.ps.workload, Simulated: true,
		Listener: hr.res.ListenerMatched, FilterChain: chainName(hr.res.FilterChainMatched), RouteConfig: hr.res.RouteConfigMatched,
		VirtualHost: hr.res.VirtualHostMatched, Route: hr.res.RouteMatched, Cluster: hr.res.ClusterMatched,
	}
	if hr.res.Error != nil {
		h.Error = hr.res.Error.Error()
	}
	if hr.res.ClusterMatched != "" {
		_, found := hr.ps.clusters[hr.res.ClusterMatched]
		h.ClusterFound = &found
	}
	return h
}

// walkState carries a request from hop to hop.
type walkState struct {
	pred      *ProbePrediction
	client    Workload
	req       parsedRequest
	firstHTTP bool // the client's own proxy handled the request at HTTP level
}

func (ws *walkState) end(class, observes, at, detail string) {
	ws.pred.Outcome = Outcome{Class: class, ClientObserves: observes, At: at, Detail: detail}
}

func (ws *walkState) notPredicted(reason string) {
	ws.pred.NotPredicted = append(ws.pred.NotPredicted, reason)
}

// observedFailure is what the client sees when a hop after its own proxy fails at connection level.
func (ws *walkState) observedFailure(first bool) string {
	if !first && ws.firstHTTP {
		// The client's sidecar answers for an upstream that reset or refused the connection.
		return "http(503)"
	}
	if ws.req.tls() {
		return "tls-reset"
	}
	return "reset"
}

func hopName(h *Hop) string { return h.Proxy + " " + h.Workload }

// classifyError ends the walk for a simulation error at a hop. first: the hop is the client's own proxy.
func (ws *walkState) classifyError(h *Hop, err error, first bool) {
	at := hopName(h)
	switch {
	case errors.Is(err, simulation.ErrNoListener), errors.Is(err, simulation.ErrNoFilterChain),
		errors.Is(err, simulation.ErrTLSError), errors.Is(err, simulation.ErrMTLSError), errors.Is(err, simulation.ErrProtocolError):
		// Refused at connection level: whether Envoy writes an entry for it is not predicted.
		h.Log = LogPrediction{Entry: "unknown"}
	}
	switch {
	case errors.Is(err, simulation.ErrNoListener):
		ws.end(ClassNoListener, ws.observedFailure(first), at, "no listener on port "+strconv.Itoa(h.Call.Port))
	case errors.Is(err, simulation.ErrNoFilterChain):
		ws.end(ClassTLSRefused, ws.observedFailure(first), at, fmt.Sprintf("no filter chain matches %s (sni %q)", h.Call.TLS, h.Call.SNI))
	case errors.Is(err, simulation.ErrTLSError), errors.Is(err, simulation.ErrMTLSError):
		ws.end(ClassTLSRefused, ws.observedFailure(first), at, fmt.Sprintf("%s: %s sent to filter chain %s", err, h.Call.TLS, h.FilterChain))
	case errors.Is(err, simulation.ErrProtocolError):
		ws.end(ClassProtocol, ws.observedFailure(first), at, fmt.Sprintf("%s: %s/%s sent to filter chain %s", err, h.Call.TLS, h.Call.Protocol, h.FilterChain))
	case errors.Is(err, simulation.ErrNoVirtualHost), errors.Is(err, simulation.ErrNoRoute):
		ws.end(ClassNoRoute, "http(404)", at, fmt.Sprintf("%s (virtual host %q)", err, h.VirtualHost))
		h.Log.ResponseCode, h.Log.ResponseFlags = 404, "NR"
	default:
		ws.end(ClassNotPredicted, "", at, "simulation: "+err.Error())
		ws.notPredicted("the simulation could not walk " + at + ": " + err.Error())
	}
}

// upstreamOf decides where a proxy sends a request after routing: ok=false when the walk ended here.
func (ws *walkState) upstreamOf(e *stateEnv, hr hopRun, h *Hop, first bool) (*UpstreamDesc, transportDesc, bool) {
	at := hopName(h)
	name := hr.res.ClusterMatched
	switch {
	case hr.res.RouteMatched == "block_all":
		h.Log.RouteName, h.Log.ResponseCode = "block_all", 502
		ws.end(ClassBlockAll, "http(502)", at,
			"REGISTRY_ONLY: no service for host "+ws.req.authority+"; route block_all answers 502 itself (direct_response, no upstream cluster)")
		return nil, transportDesc{}, false
	case name == "":
		if status, ok := hr.directResponse(); ok {
			h.Log.ResponseCode = status
			ws.end(ClassDirectResponse, fmt.Sprintf("http(%d)", status), at, fmt.Sprintf("route %q answers %d itself (direct_response)", hr.res.RouteMatched, status))
			return nil, transportDesc{}, false
		}
		ws.end(ClassNotPredicted, "", at, "route "+hr.res.RouteMatched+" has no cluster (redirect or an unidentified route)")
		ws.notPredicted("a redirect or unidentified route without cluster at " + at)
		return nil, transportDesc{}, false
	case name == "BlackHoleCluster":
		h.Log.UpstreamCluster = strp(name)
		if hr.isHTTP {
			h.Log.ResponseCode, h.Log.ResponseFlags = 503, "UH"
			ws.end(ClassBlackHole, "http(503)", at, "routed to BlackHoleCluster (no endpoints)")
		} else {
			h.Log.ResponseFlags = "UH"
			ws.end(ClassBlackHole, ws.observedFailure(first), at,
				"TCP/TLS to an address no listener or service claims: virtualOutbound catch-all to BlackHoleCluster, connection closed")
		}
		return nil, transportDesc{}, false
	}
	c, ok := hr.ps.clusters[name]
	if !ok {
		h.Log.ResponseCode, h.Log.ResponseFlags = 503, "NC"
		ws.end(ClassNoCluster, "http(503)", at, "route names cluster "+name+", absent from CDS (503 NC)")
		return nil, transportDesc{}, false
	}
	h.Log.UpstreamCluster = strp(name)
	up := &UpstreamDesc{Cluster: name, ClusterType: clusterTypeName(c)}
	var ep endpointDesc
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		ep = endpointDesc{Address: hr.call.Address, Port: hr.call.Port}
		up.TransportBy = "original destination"
	} else {
		eps := endpointsOf(c, hr.ps.eds)
		if len(eps) == 0 {
			h.Log.ResponseCode, h.Log.ResponseFlags = 503, "UH"
			ws.end(ClassNoEndpoint, "http(503)", at, fmt.Sprintf("cluster %s (%s) has no endpoints: 503 UH, no healthy upstream", name, clusterTypeName(c)))
			return nil, transportDesc{}, false
		}
		ep = eps[0]
		if len(eps) > 1 {
			h.Note = joinNonEmpty("; ", h.Note, fmt.Sprintf("cluster %s has %d endpoints; the first is followed", name, len(eps)))
		}
	}
	td, err := transportFor(c, ep)
	if err != nil {
		ws.end(ClassNotPredicted, "", at, "transport socket of "+name+": "+err.Error())
		ws.notPredicted("unreadable transport socket at " + at)
		return nil, transportDesc{}, false
	}
	up.Address, up.Port = ep.Address, ep.Port
	up.Transport, up.SNI, up.Credential, up.Validation = td.Kind, td.SNI, td.Credential, td.Validation
	if td.AutoSNI && up.SNI == "" {
		up.SNI = "(auto: request host)"
	}
	if up.TransportBy == "" {
		up.TransportBy = td.By
	}
	if !hr.isHTTP && td.Kind == "plaintext" {
		up.Transport = "client-bytes"
		if ws.req.tls() {
			up.Transport = "client-bytes (client TLS)"
		}
	}
	h.Log.UpstreamHostPort = ep.Port
	switch {
	case ep.Address == hr.ps.ip:
		up.Next = "self"
	case e.w.GatewayPodIP != "" && ep.Address == e.w.GatewayPodIP:
		up.Next, up.NextName = "egress-gateway", e.w.Plan.EgressGateway.Namespace+"/"+e.w.Plan.EgressGateway.Name
	default:
		up.Next = "origin"
		for _, wp := range e.w.Waypoints {
			if ep.Address == wp.PodIP {
				up.Next, up.NextName = "waypoint", wp.Ref()
			}
		}
		for _, wl := range e.w.Check.Workloads {
			if ep.Address == wl.IP {
				up.Next, up.NextName = "mesh-workload", wl.Ref
			}
		}
	}
	h.Upstream = up
	return up, td, true
}

// finishAtOrigin ends a walk whose last proxy leaves the mesh.
func (ws *walkState) finishAtOrigin(e *stateEnv, h *Hop, up *UpstreamDesc) {
	o := &Origin{Port: up.Port, Transport: up.Transport, SNI: up.SNI, Credential: up.Credential, Validation: up.Validation}
	addr := up.Address
	if ip, ok := e.w.ResolveHost(addr); ok {
		if ip != addr {
			o.Host = addr
		}
		o.Address = ip
		o.Known = e.w.ExternalHostOf(ip)
	} else {
		o.Host = addr
	}
	if o.Known == "" {
		ws.notPredicted(fmt.Sprintf("%s connects to %s:%d, which is not an address or host of the plan's external world (DNS and the origin are outside the oracle)", hopName(h), addr, up.Port))
	}
	ns := e.w.Plan.EgressGateway.Namespace
	if h.Proxy != "egress-gateway" {
		ns = strings.SplitN(h.Workload, "/", 2)[0]
	}
	for _, sds := range []string{up.Credential, up.Validation} {
		if !strings.HasPrefix(sds, "kubernetes://") {
			continue
		}
		secret := strings.TrimPrefix(sds, "kubernetes://")
		if !e.w.hasSecret(ns, secret) {
			ws.notPredicted(fmt.Sprintf("%s originates TLS with %s, but no Secret %s/%s is in the plan (a missing secret gives 503)", hopName(h), sds, ns, strings.TrimSuffix(secret, "-cacert")))
		}
	}
	switch {
	case (up.Transport == "tls" || up.Transport == "mutual-tls") && strings.HasPrefix(up.Validation, "file-root:system"):
		ws.notPredicted(fmt.Sprintf("%s verifies the origin's certificate against the system CA bundle (%s); the external world's certificates come from the run's test CA, so the handshake fails (503) unless the DestinationRule supplies that CA (caCertificates or credentialName)", hopName(h), up.Validation))
	case up.Transport == "tls" || up.Transport == "mutual-tls":
		ws.pred.Assumptions = append(ws.pred.Assumptions, fmt.Sprintf("the TLS handshake of %s with the origin succeeds (server certificate checked with %s; not simulated)", hopName(h), up.Validation))
	}
	if ws.req.tls() && up.Transport != "tls" && up.Transport != "mutual-tls" {
		ws.pred.Assumptions = append(ws.pred.Assumptions, "the client's TLS handshake is with the origin (not simulated)")
	}
	ws.pred.Outcome = Outcome{
		Class: ClassRouted, ClientObserves: "origin", Cluster: up.Cluster, Origin: o,
		Detail: fmt.Sprintf("%s sends to %s:%d over %s (cluster %s)", hopName(h), firstNonEmpty(o.Host, o.Address), o.Port, up.Transport, up.Cluster),
	}
}

func (w *World) hasSecret(ns, name string) bool {
	for _, r := range w.State.Resources {
		if r.Kind == "Secret" && r.group() == "" && r.Namespace == ns && (r.Name == name || r.Name+"-cacert" == name) {
			return true
		}
	}
	return false
}

// networkPolicyNote names NetworkPolicies that select a workload: their enforcement is outside the oracle.
func (w *World) networkPolicyNote(wl Workload) string {
	var names []string
	for _, np := range w.NetworkPolicies {
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

// Predict walks one probe from its client to the origin (or to where it ends).
func (e *stateEnv) Predict(pp ProbePoint) ProbePrediction {
	a := pp.Action
	pred := ProbePrediction{Check: e.w.Check.ID, Mode: e.w.Check.Mode, Probe: a.Probe, Seq: a.Seq, Client: a.Client,
		Display: a.Request.Display, State: pp.State.Fingerprint(e.w.Check.Mode), Adaptations: pp.State.Adaptations, Hops: []Hop{}}
	ws := &walkState{pred: &pred}
	wl := e.w.Check.workload(a.Client)
	if wl == nil {
		ws.end(ClassNotPredicted, "", "", "client "+a.Client+" is not in the check's workloads")
		ws.notPredicted("unknown client workload " + a.Client)
		return pred
	}
	ws.client = *wl
	pred.Dataplane = wl.Dataplane
	req, err := parseRequest(a.Request)
	if err != nil {
		ws.end(ClassNotPredicted, "", "", "request: "+err.Error())
		ws.notPredicted("request URL " + a.Request.URL + ": " + err.Error())
		return pred
	}
	ws.req = req
	for _, u := range e.w.Unknown {
		ws.notPredicted("the state holds " + u + ", a kind the oracle does not model")
	}
	if note := e.w.networkPolicyNote(*wl); note != "" {
		ws.notPredicted(note)
	}
	addr, ok := e.w.ResolveHost(req.host)
	if !ok && e.w.externalWorldService(req.host) {
		addr, ok = unknownServiceAddress, true
		ws.pred.Assumptions = append(ws.pred.Assumptions, req.host+" resolves (cluster DNS) to the ClusterIP of an external-world Service, an address istiod does not know (stood in for by "+unknownServiceAddress+")")
	}
	switch wl.Dataplane {
	case "sidecar":
		if !ok {
			ws.end(ClassNotPredicted, "", "", "")
			ws.notPredicted("the client resolves " + req.host + " with cluster DNS; the name is not in the plan's external world (DNS is outside the oracle)")
			return pred
		}
		e.walkSidecar(ws, addr)
	case "ambient":
		e.walkAmbient(ws, addr, ok)
	default:
		if !ok {
			ws.end(ClassNotPredicted, "", "", "")
			ws.notPredicted("DNS of " + req.host + " is outside the oracle")
			return pred
		}
		if addr == e.w.GatewaySvcIP && addr != "" {
			e.walkGatewayFromOutside(ws)
			return pred
		}
		pred.Hops = append(pred.Hops, Hop{Proxy: "none", Workload: wl.Ref, Note: "no sidecar and no ambient enrolment: the request leaves the pod directly"})
		pred.Outcome = Outcome{Class: ClassDirect, ClientObserves: "origin",
			Origin: &Origin{Address: addr, Port: req.port, Transport: map[bool]string{true: "client TLS", false: "plaintext"}[req.tls()], Known: e.w.ExternalHostOf(addr)},
			Detail: "no mesh proxy on the path: the client reaches " + addr + " itself"}
	}
	return pred
}

func (e *stateEnv) walkSidecar(ws *walkState, addr string) {
	req := ws.req
	sc := e.sidecar(ws.client)
	call := simulation.Call{Address: addr, Port: req.port, Path: req.path, Protocol: simulation.HTTP, TLS: simulation.Plaintext,
		HostHeader: req.authority, Headers: req.httpHeaders(), CallMode: simulation.CallModeOutbound}
	if req.tls() {
		call.TLS, call.Sni, call.Alpn = simulation.TLS, req.host, "http/1.1"
		call.HostHeader = ""
	}
	hr := sc.run(call)
	h := hr.hop()
	h.Call = callDesc(call, req.method, "")
	ws.firstHTTP = hr.isHTTP
	h.Log.Authority, h.Log.Method = logHTTP(hr.isHTTP, req)
	if !hr.isHTTP {
		h.Log.RequestedServerName = call.Sni
	}
	defer func() { ws.pred.Hops = append([]Hop{h}, ws.pred.Hops...) }()
	if hr.res.Error != nil {
		ws.classifyError(&h, hr.res.Error, true)
		return
	}
	up, td, ok := ws.upstreamOf(e, hr, &h, true)
	if !ok {
		return
	}
	switch up.Next {
	case "origin":
		ws.finishAtOrigin(e, &h, up)
	case "egress-gateway":
		e.walkGateway(ws, hr, &h, up, td)
	case "self":
		ws.end(ClassLoop, "loop", hopName(&h), "the sidecar's cluster sends the request back to its own pod")
	default:
		ws.end(ClassNotPredicted, "", hopName(&h), "next hop "+up.Next+" "+up.NextName+" is not walked")
		ws.notPredicted("the request goes to " + up.Next + " " + up.NextName + ", which the oracle does not walk")
	}
}

func logHTTP(isHTTP bool, req parsedRequest) (string, string) {
	if !isHTTP {
		return "", ""
	}
	return req.authority, req.method
}

// nextCall is what a proxy sends to the next proxy, given the transport its cluster chose.
func nextCall(prev hopRun, req parsedRequest, up *UpstreamDesc, td transportDesc, proto string) simulation.Call {
	c := simulation.Call{Address: up.Address, Port: up.Port, Path: req.path, CallMode: simulation.CallModeGateway, Headers: req.httpHeaders()}
	if prev.isHTTP {
		c.HostHeader = req.authority
		c.Protocol = simulation.Protocol(proto)
	} else {
		c.Protocol = simulation.TCP
		if req.tls() {
			c.Protocol = simulation.HTTP
		}
	}
	switch td.Kind {
	case "istio-mtls":
		c.TLS, c.Sni = simulation.MTLS, td.SNI
		if !prev.isHTTP {
			c.Protocol = simulation.TCP
		}
	case "tls", "mutual-tls":
		c.TLS, c.Sni = simulation.TLS, td.SNI
		if !prev.isHTTP {
			c.Protocol = simulation.TCP
		}
	default:
		if !prev.isHTTP && req.tls() {
			// The sidecar's TCP proxy forwards the client's own TLS bytes.
			c.TLS, c.Sni, c.Alpn = simulation.TLS, prev.call.Sni, prev.call.Alpn
		}
	}
	return c
}

func (e *stateEnv) walkGateway(ws *walkState, prev hopRun, prevHop *Hop, up *UpstreamDesc, td transportDesc) {
	req := ws.req
	gw := e.gateway()
	proto := "http"
	if prev.ps != nil {
		proto = upstreamProtocol(prev.ps.clusters[up.Cluster], "http")
	}
	call := nextCall(prev, req, up, td, proto)
	principal := ""
	if td.Kind == "istio-mtls" {
		principal = spiffe(ws.client.Namespace, ws.client.ServiceAccount)
	}
	hr := gw.run(call)
	h := hr.hop()
	h.Call = callDesc(call, req.method, principal)
	h.Log.Authority, h.Log.Method = logHTTP(hr.isHTTP, req)
	h.Log.DownstreamRemoteHost = ws.client.IP
	if !hr.isHTTP {
		h.Log.RequestedServerName = call.FillDefaults().Sni
	}
	defer func() { ws.pred.Hops = append(ws.pred.Hops, h) }()
	if hr.res.Error != nil && !errors.Is(hr.res.Error, simulation.ErrNoRoute) && !errors.Is(hr.res.Error, simulation.ErrNoVirtualHost) {
		ws.classifyError(&h, hr.res.Error, false)
		if prevHop.Log.ResponseCode == 0 && ws.firstHTTP {
			prevHop.Log.ResponseCode = 503
			prevHop.Log.ResponseFlags = "UF,URX"
		}
		return
	}
	in := rbacInput{Principal: principal, SourceIP: ws.client.IP, DestIP: gw.ip, DestPort: call.Port, SNI: call.FillDefaults().Sni,
		Headers: req.rbacHeaders(), HTTP: hr.isHTTP}
	if rb := hr.rbac(in); rb != nil {
		h.RBAC = rb
		if principal == "" {
			rb.Reason = joinNonEmpty("; ", rb.Reason, "the caller reaches the gateway without mTLS: no principal or namespace is known to the gateway")
		}
		switch rb.Decision {
		case "deny":
			if c := hr.res.ClusterMatched; c != "" {
				if _, ok := gw.clusters[c]; ok {
					h.Log.UpstreamCluster = strp(c)
				}
			}
			if hr.isHTTP {
				h.Log.ResponseCode = 403
				prevHop.Log.ResponseCode = 403
				ws.end(ClassRBACDeny, "http(403)", hopName(&h), "RBAC policy "+rb.Policy+" denies the request")
				ws.pred.Outcome.BodyContains = "RBAC: access denied"
			} else {
				ws.end(ClassRBACDeny, ws.observedFailure(false), hopName(&h), "network RBAC policy "+rb.Policy+" closes the connection")
			}
			return
		case "unknown":
			ws.notPredicted("authorization at " + hopName(&h) + ": " + rb.Reason)
		}
	}
	if hr.res.Error != nil {
		ws.classifyError(&h, hr.res.Error, false)
		prevHop.Log.ResponseCode = h.Log.ResponseCode
		return
	}
	next, _, ok := ws.upstreamOf(e, hr, &h, false)
	if !ok {
		if ws.pred.Outcome.ClientObserves == "http(503)" || ws.pred.Outcome.ClientObserves == "http(502)" {
			prevHop.Log.ResponseCode = h.Log.ResponseCode
		}
		return
	}
	switch next.Next {
	case "origin":
		ws.finishAtOrigin(e, &h, next)
	case "self", "egress-gateway":
		ws.end(ClassLoop, "loop", hopName(&h),
			fmt.Sprintf("cluster %s (%s) sends the request to %s:%d, the gateway itself", next.Cluster, next.ClusterType, next.Address, next.Port))
	default:
		ws.end(ClassNotPredicted, "", hopName(&h), "next hop "+next.Next+" is not walked")
		ws.notPredicted("the gateway sends to " + next.Next + " " + next.NextName + ", which the oracle does not walk")
	}
}

// walkGatewayFromOutside follows a request from a pod outside the mesh to the egress gateway's Service:
// kube-proxy delivers it, as sent, to the gateway pod's target port.
func (e *stateEnv) walkGatewayFromOutside(ws *walkState) {
	req := ws.req
	ws.pred.Hops = append(ws.pred.Hops, Hop{Proxy: "none", Workload: ws.client.Ref,
		Note: "no mesh proxy: the request goes to the egress gateway's Service as sent"})
	target := e.w.gatewayTargetPort(req.port)
	if target == 0 {
		ws.end(ClassNoListener, "conn-refused", "egress-gateway Service", fmt.Sprintf("the egress gateway Service has no port %d", req.port))
		return
	}
	td := transportDesc{Kind: "plaintext"}
	prev := hopRun{isHTTP: !req.tls(), call: simulation.Call{Sni: req.host, Alpn: "http/1.1"}}
	if req.tls() {
		td = transportDesc{Kind: "tls", SNI: req.host}
	}
	up := &UpstreamDesc{Cluster: "(kube-proxy)", Address: e.w.GatewayPodIP, Port: target, Transport: td.Kind, Next: "egress-gateway"}
	ws.firstHTTP = false
	var client Hop
	e.walkGateway(ws, prev, &client, up, td)
}

// directResponse finds the matched route and returns its direct_response status, if it has one.
func (hr hopRun) directResponse() (int, bool) {
	var rc *route.RouteConfiguration
	if hr.res.RouteConfigMatched != "" {
		rc = xdstest.ExtractRouteConfigurations(hr.ps.sim.Routes)[hr.res.RouteConfigMatched]
	} else {
		for _, fc := range hr.chains {
			for _, f := range fc.GetFilters() {
				if f.GetName() != "envoy.filters.network.http_connection_manager" {
					continue
				}
				h := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(h); err == nil && h.GetRouteConfig() != nil {
					rc = h.GetRouteConfig()
				}
			}
		}
	}
	path := hr.call.Path
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() != hr.res.VirtualHostMatched {
			continue
		}
		for _, r := range vh.GetRoutes() {
			if r.GetName() != hr.res.RouteMatched || !pathMatches(r.GetMatch(), path) {
				continue
			}
			if dr := r.GetDirectResponse(); dr != nil {
				return int(dr.GetStatus()), true
			}
			return 0, false
		}
	}
	return 0, false
}

func pathMatches(m *route.RouteMatch, path string) bool {
	switch {
	case m.GetPrefix() != "":
		return strings.HasPrefix(path, m.GetPrefix())
	case m.GetPath() != "":
		return path == m.GetPath()
	case m.GetPathSeparatedPrefix() != "":
		p := m.GetPathSeparatedPrefix()
		return path == p || strings.HasPrefix(path, p+"/") || strings.HasPrefix(path, p+"?")
	case m.GetSafeRegex() != nil:
		re, err := regexp.Compile("^(?:" + m.GetSafeRegex().GetRegex() + ")$")
		return err == nil && re.MatchString(path)
	}
	return true
}
