package walk

import (
	"istio.io/istio/pilot/pkg/simulation"

	"egress-conformance.io/oracle/internal/prediction"
)

// walkSidecar follows a request from the client's sidecar (the first hop) on.
func (e *Env) walkSidecar(ws *walkState, addr string) {
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
	defer func() { ws.pred.Hops = append([]prediction.Hop{h}, ws.pred.Hops...) }()
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
		ws.end(prediction.ClassLoop, "loop", hopName(&h), "the sidecar's cluster sends the request back to its own pod")
	default:
		ws.end(prediction.ClassNotPredicted, "", hopName(&h), "next hop "+up.Next+" "+up.NextName+" is not walked")
		ws.notPredicted("the request goes to " + up.Next + " " + up.NextName + ", which the oracle does not walk")
	}
}
