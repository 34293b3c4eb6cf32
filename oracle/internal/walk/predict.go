package walk

import (
	"egress-conformance.io/oracle/internal/plan"
	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/world"
)

// Predict walks one probe from its client to the origin (or to where it ends).
func (e *Env) Predict(pp plan.ProbePoint) prediction.Probe {
	a := pp.Action
	pred := prediction.Probe{Check: e.w.Check.ID, Mode: e.w.Check.Mode, Probe: a.Probe, Seq: a.Seq, Client: a.Client,
		Display: a.Request.Display, State: pp.State.Fingerprint(e.w.Check.Mode), Adaptations: pp.State.Adaptations, Hops: []prediction.Hop{}}
	ws := &walkState{pred: &pred}
	wl := e.w.Check.Workload(a.Client)
	if wl == nil {
		ws.end(prediction.ClassNotPredicted, "", "", "client "+a.Client+" is not in the check's workloads")
		ws.notPredicted("unknown client workload " + a.Client)
		return pred
	}
	ws.client = *wl
	pred.Dataplane = wl.Dataplane
	req, err := parseRequest(a.Request)
	if err != nil {
		ws.end(prediction.ClassNotPredicted, "", "", "request: "+err.Error())
		ws.notPredicted("request URL " + a.Request.URL + ": " + err.Error())
		return pred
	}
	ws.req = req
	for _, u := range e.w.Unknown {
		ws.notPredicted("the state holds " + u + ", a kind the oracle does not model")
	}
	if note := e.w.NetworkPolicyNote(*wl); note != "" {
		ws.notPredicted(note)
	}
	addr, ok := e.w.ResolveHost(req.host)
	if !ok && e.w.ExternalWorldService(req.host) {
		addr, ok = world.UnknownServiceAddress, true
		ws.pred.Assumptions = append(ws.pred.Assumptions, req.host+" resolves (cluster DNS) to the ClusterIP of an external-world Service, an address istiod does not know (stood in for by "+world.UnknownServiceAddress+")")
	}
	switch wl.Dataplane {
	case "sidecar":
		if !ok {
			ws.end(prediction.ClassNotPredicted, "", "", "")
			ws.notPredicted("the client resolves " + req.host + " with cluster DNS; the name is not in the plan's external world (DNS is outside the oracle)")
			return pred
		}
		e.walkSidecar(ws, addr)
	case "ambient":
		e.walkAmbient(ws, addr, ok)
	default:
		if !ok {
			ws.end(prediction.ClassNotPredicted, "", "", "")
			ws.notPredicted("DNS of " + req.host + " is outside the oracle")
			return pred
		}
		if addr == e.w.GatewaySvcIP && addr != "" {
			e.walkGatewayFromOutside(ws)
			return pred
		}
		pred.Hops = append(pred.Hops, prediction.Hop{Proxy: "none", Workload: wl.Ref, Note: "no sidecar and no ambient enrolment: the request leaves the pod directly"})
		pred.Outcome = prediction.Outcome{Class: prediction.ClassDirect, ClientObserves: "origin",
			Origin: &prediction.Origin{Address: addr, Port: req.port, Transport: map[bool]string{true: "client TLS", false: "plaintext"}[req.tls()], Known: e.w.ExternalHostOf(addr)},
			Detail: "no mesh proxy on the path: the client reaches " + addr + " itself"}
	}
	return pred
}
