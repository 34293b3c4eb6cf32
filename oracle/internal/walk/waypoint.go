package walk

import (
	"fmt"
	"net/http"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config/host"

	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/rbac"
)

// waypointChain finds the waypoint whose main_internal listener holds an inbound-vip chain for host:port:
// istiod builds one only for services bound to that waypoint.
func (e *Env) waypointChain(h string, port int) (*proxySim, *listener.FilterChain) {
	for _, wp := range e.w.Waypoints {
		ps := e.waypoint(wp)
		l := xdstest.ExtractListener("main_internal", ps.sim.Listeners)
		if l == nil {
			continue
		}
		for _, proto := range []string{"http", "tcp"} {
			name := model.BuildSubsetKey(model.TrafficDirectionInboundVIP, proto, host.Name(h), port)
			for _, fc := range l.GetFilterChains() {
				if chainName(fc.GetName()) == name {
					return ps, fc
				}
			}
		}
	}
	return nil, nil
}

// runChain walks a call through one filter chain of a proxy, wrapped in a synthetic listener: the
// waypoint's main_internal listener selects chains with a filter_chain_matcher the stock simulation does
// not evaluate, and it has no socket address.
func (ps *proxySim) runChain(fc *listener.FilterChain, call simulation.Call) hopRun {
	syn := &listener.Listener{
		Name: "main_internal",
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(call.Port)},
		}}},
		FilterChains: []*listener.FilterChain{fc},
	}
	sim := *ps.sim
	sim.Listeners = []*listener.Listener{syn}
	if call.Headers == nil {
		call.Headers = http.Header{}
	}
	res := sim.Run(call)
	hr := hopRun{ps: ps, call: call, res: res, chains: []*listener.FilterChain{fc}}
	for _, f := range fc.GetFilters() {
		if f.GetName() == "envoy.filters.network.http_connection_manager" {
			hr.isHTTP = true
		}
	}
	return hr
}

// walkAmbient follows a request of an ambient client: through the waypoint istiod binds the destination
// to, or, without one, past ztunnel straight to the address the client resolved.
func (e *Env) walkAmbient(ws *walkState, addr string, resolved bool) {
	req := ws.req
	ps, fc := e.waypointChain(req.host, req.port)
	if ps == nil {
		ws.pred.Hops = append(ws.pred.Hops, prediction.Hop{Proxy: "ztunnel", Workload: ws.client.Ref,
			Note: fmt.Sprintf("no ServiceEntry for %s:%d is bound to a waypoint: ztunnel forwards the connection at L4 to the address the client resolved", req.host, req.port)})
		ws.notPredicted("ztunnel's handling of a destination without a waypoint (passthrough; outboundTrafficPolicy does not apply to ztunnel) is outside the oracle")
		if !resolved {
			ws.notPredicted("DNS of " + req.host + " is outside the oracle")
		}
		ws.pred.Outcome = prediction.Outcome{Class: prediction.ClassDirect, ClientObserves: "origin",
			Origin: &prediction.Origin{Address: addr, Port: req.port, Known: e.w.ExternalHostOf(addr)},
			Detail: "no Envoy on the path: ztunnel passes the connection through"}
		return
	}
	vip := e.w.AutoVIPs[req.host]
	ws.pred.Hops = append(ws.pred.Hops, prediction.Hop{Proxy: "ztunnel", Workload: ws.client.Ref,
		Note: fmt.Sprintf("istiod binds %s:%d to waypoint %s; ztunnel resolves %s to the ServiceEntry VIP %s (DNS capture) and tunnels to the waypoint over HBONE",
			req.host, req.port, ps.workload, req.host, firstNonEmpty(vip, "(spec.addresses)"))})
	ws.pred.Assumptions = append(ws.pred.Assumptions,
		"ztunnel (not simulated) follows istiod's waypoint binding: DNS capture answers the ServiceEntry VIP and the connection is tunnelled to the waypoint")
	principal := spiffe(ws.client.Namespace, ws.client.ServiceAccount)
	call := simulation.Call{Address: firstNonEmpty(vip, addr, "240.240.0.1"), Port: req.port, Path: req.path, Protocol: simulation.HTTP,
		TLS: simulation.Plaintext, HostHeader: req.authority, Headers: req.httpHeaders(), CallMode: simulation.CallModeGateway}
	if req.tls() {
		call.TLS, call.Sni, call.Alpn, call.HostHeader = simulation.TLS, req.host, "http/1.1", ""
	}
	hr := ps.runChain(fc, call)
	h := hr.hop()
	h.Note = "chain " + chainName(fc.GetName()) + " of listener main_internal, walked through a synthetic listener"
	h.Call = callDesc(call, req.method, principal)
	h.Log.Authority, h.Log.Method = logHTTP(hr.isHTTP, req)
	h.Log.DownstreamRemoteHost = ws.client.IP
	if !hr.isHTTP {
		h.Log.RequestedServerName = call.Sni
	}
	ws.firstHTTP = false
	defer func() { ws.pred.Hops = append(ws.pred.Hops, h) }()
	if hr.res.Error != nil && hr.res.VirtualHostMatched == "" && hr.res.FilterChainMatched == "" {
		ws.classifyError(&h, hr.res.Error, true)
		return
	}
	in := rbac.Input{FilterState: map[string]string{rbac.PeerPrincipalKey: principal}, SourceIP: ws.client.IP, DestIP: call.Address,
		DestPort: call.Port, SNI: call.Sni, Headers: req.rbacHeaders(), HTTP: hr.isHTTP}
	if rb := hr.rbac(in); rb != nil {
		h.RBAC = rb
		switch rb.Decision {
		case "deny":
			if c := hr.res.ClusterMatched; c != "" {
				if _, ok := ps.clusters[c]; ok {
					h.Log.UpstreamCluster = strp(c)
				}
			}
			if hr.isHTTP {
				h.Log.ResponseCode = 403
				ws.end(prediction.ClassRBACDeny, "http(403)", hopName(&h), "RBAC policy "+rb.Policy+" denies the request")
				ws.pred.Outcome.BodyContains = "RBAC: access denied"
			} else {
				ws.end(prediction.ClassRBACDeny, ws.observedFailure(true), hopName(&h), "network RBAC policy "+rb.Policy+" closes the connection")
			}
			return
		case "unknown":
			ws.notPredicted("authorization at " + hopName(&h) + ": " + rb.Reason)
		}
	}
	if hr.res.Error != nil {
		ws.classifyError(&h, hr.res.Error, true)
		return
	}
	up, _, ok := ws.upstreamOf(e, hr, &h, true)
	if !ok {
		return
	}
	if up.Next != "origin" {
		ws.end(prediction.ClassNotPredicted, "", hopName(&h), "next hop "+up.Next+" is not walked")
		ws.notPredicted("the waypoint sends to " + up.Next + " " + up.NextName + ", which the oracle does not walk")
		return
	}
	ws.finishAtOrigin(e, &h, up)
}
