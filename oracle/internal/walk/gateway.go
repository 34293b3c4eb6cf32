package walk

import (
	"errors"
	"fmt"

	"istio.io/istio/pilot/pkg/simulation"

	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/rbac"
	"egress-conformance.io/oracle/internal/upstream"
)

// nextCall is what a proxy sends to the next proxy, given the transport its cluster chose.
func nextCall(prev hopRun, req parsedRequest, up *prediction.UpstreamDesc, td upstream.Transport, proto string) simulation.Call {
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

// walkGateway follows a request into the egress gateway, as the previous hop sends it with the transport
// its cluster chose (td), and on to where the gateway sends it.
func (e *Env) walkGateway(ws *walkState, prev hopRun, prevHop *prediction.Hop, up *prediction.UpstreamDesc, td upstream.Transport) {
	req := ws.req
	gw := e.gateway()
	proto := "http"
	if prev.ps != nil {
		proto = upstream.Protocol(prev.ps.clusters[up.Cluster], "http")
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
	in := rbac.Input{Principal: principal, SourceIP: ws.client.IP, DestIP: gw.ip, DestPort: call.Port, SNI: call.FillDefaults().Sni,
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
				ws.end(prediction.ClassRBACDeny, "http(403)", hopName(&h), "RBAC policy "+rb.Policy+" denies the request")
				ws.pred.Outcome.BodyContains = "RBAC: access denied"
			} else {
				ws.end(prediction.ClassRBACDeny, ws.observedFailure(false), hopName(&h), "network RBAC policy "+rb.Policy+" closes the connection")
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
		ws.end(prediction.ClassLoop, "loop", hopName(&h),
			fmt.Sprintf("cluster %s (%s) sends the request to %s:%d, the gateway itself", next.Cluster, next.ClusterType, next.Address, next.Port))
	default:
		ws.end(prediction.ClassNotPredicted, "", hopName(&h), "next hop "+next.Next+" is not walked")
		ws.notPredicted("the gateway sends to " + next.Next + " " + next.NextName + ", which the oracle does not walk")
	}
}

// walkGatewayFromOutside follows a request from a pod outside the mesh to the egress gateway's Service:
// kube-proxy delivers it, as sent, to the gateway pod's target port.
func (e *Env) walkGatewayFromOutside(ws *walkState) {
	req := ws.req
	ws.pred.Hops = append(ws.pred.Hops, prediction.Hop{Proxy: "none", Workload: ws.client.Ref,
		Note: "no mesh proxy: the request goes to the egress gateway's Service as sent"})
	target := e.w.GatewayTargetPort(req.port)
	if target == 0 {
		ws.end(prediction.ClassNoListener, "conn-refused", "egress-gateway Service", fmt.Sprintf("the egress gateway Service has no port %d", req.port))
		return
	}
	td := upstream.Transport{Kind: "plaintext"}
	prev := hopRun{isHTTP: !req.tls(), call: simulation.Call{Sni: req.host, Alpn: "http/1.1"}}
	if req.tls() {
		td = upstream.Transport{Kind: "tls", SNI: req.host}
	}
	up := &prediction.UpstreamDesc{Cluster: "(kube-proxy)", Address: e.w.GatewayPodIP, Port: target, Transport: td.Kind, Next: "egress-gateway"}
	ws.firstHTTP = false
	var client prediction.Hop
	e.walkGateway(ws, prev, &client, up, td)
}
