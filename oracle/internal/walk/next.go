package walk

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/upstream"
)

// upstreamOf decides where a proxy sends a request after routing: ok=false when the walk ended here.
func (ws *walkState) upstreamOf(e *Env, hr hopRun, h *prediction.Hop, first bool) (*prediction.UpstreamDesc, upstream.Transport, bool) {
	at := hopName(h)
	name := hr.res.ClusterMatched
	switch {
	case hr.res.RouteMatched == "block_all":
		h.Log.RouteName, h.Log.ResponseCode = "block_all", 502
		ws.end(prediction.ClassBlockAll, "http(502)", at,
			"REGISTRY_ONLY: no service for host "+ws.req.authority+"; route block_all answers 502 itself (direct_response, no upstream cluster)")
		return nil, upstream.Transport{}, false
	case name == "":
		if status, ok := hr.directResponse(); ok {
			h.Log.ResponseCode = status
			ws.end(prediction.ClassDirectResponse, fmt.Sprintf("http(%d)", status), at, fmt.Sprintf("route %q answers %d itself (direct_response)", hr.res.RouteMatched, status))
			return nil, upstream.Transport{}, false
		}
		ws.end(prediction.ClassNotPredicted, "", at, "route "+hr.res.RouteMatched+" has no cluster (redirect or an unidentified route)")
		ws.notPredicted("a redirect or unidentified route without cluster at " + at)
		return nil, upstream.Transport{}, false
	case name == "BlackHoleCluster":
		h.Log.UpstreamCluster = strp(name)
		if hr.isHTTP {
			h.Log.ResponseCode, h.Log.ResponseFlags = 503, "UH"
			ws.end(prediction.ClassBlackHole, "http(503)", at, "routed to BlackHoleCluster (no endpoints)")
		} else {
			h.Log.ResponseFlags = "UH"
			ws.end(prediction.ClassBlackHole, ws.observedFailure(first), at,
				"TCP/TLS to an address no listener or service claims: virtualOutbound catch-all to BlackHoleCluster, connection closed")
		}
		return nil, upstream.Transport{}, false
	}
	c, ok := hr.ps.clusters[name]
	if !ok {
		h.Log.ResponseCode, h.Log.ResponseFlags = 503, "NC"
		ws.end(prediction.ClassNoCluster, "http(503)", at, "route names cluster "+name+", absent from CDS (503 NC)")
		return nil, upstream.Transport{}, false
	}
	h.Log.UpstreamCluster = strp(name)
	up := &prediction.UpstreamDesc{Cluster: name, ClusterType: upstream.ClusterType(c)}
	var ep upstream.Endpoint
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		ep = upstream.Endpoint{Address: hr.call.Address, Port: hr.call.Port}
		up.TransportBy = "original destination"
	} else {
		eps := upstream.Endpoints(c, hr.ps.eds)
		if len(eps) == 0 {
			h.Log.ResponseCode, h.Log.ResponseFlags = 503, "UH"
			ws.end(prediction.ClassNoEndpoint, "http(503)", at, fmt.Sprintf("cluster %s (%s) has no endpoints: 503 UH, no healthy upstream", name, upstream.ClusterType(c)))
			return nil, upstream.Transport{}, false
		}
		ep = eps[0]
		if len(eps) > 1 {
			h.Note = joinNonEmpty("; ", h.Note, fmt.Sprintf("cluster %s has %d endpoints; the first is followed", name, len(eps)))
		}
	}
	td, err := upstream.TransportFor(c, ep)
	if err != nil {
		ws.end(prediction.ClassNotPredicted, "", at, "transport socket of "+name+": "+err.Error())
		ws.notPredicted("unreadable transport socket at " + at)
		return nil, upstream.Transport{}, false
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
