package walk

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"istio.io/istio/pilot/pkg/simulation"

	"egress-conformance.io/oracle/internal/plan"
	"egress-conformance.io/oracle/internal/prediction"
)

// walkState carries a request from hop to hop.
type walkState struct {
	pred      *prediction.Probe
	client    plan.Workload
	req       parsedRequest
	firstHTTP bool // the client's own proxy handled the request at HTTP level
}

// end records where and how the request ends.
func (ws *walkState) end(class, observes, at, detail string) {
	ws.pred.Outcome = prediction.Outcome{Class: class, ClientObserves: observes, At: at, Detail: detail}
}

// notPredicted records a reason the result cannot be judged by the oracle.
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

// hopName names a hop as its proxy kind and workload.
func hopName(h *prediction.Hop) string { return h.Proxy + " " + h.Workload }

// classifyError ends the walk for a simulation error at a hop. first: the hop is the client's own proxy.
func (ws *walkState) classifyError(h *prediction.Hop, err error, first bool) {
	at := hopName(h)
	switch {
	case errors.Is(err, simulation.ErrNoListener), errors.Is(err, simulation.ErrNoFilterChain),
		errors.Is(err, simulation.ErrTLSError), errors.Is(err, simulation.ErrMTLSError), errors.Is(err, simulation.ErrProtocolError):
		// Refused at connection level: whether Envoy writes an entry for it is not predicted.
		h.Log = prediction.Log{Entry: "unknown"}
	}
	switch {
	case errors.Is(err, simulation.ErrNoListener):
		ws.end(prediction.ClassNoListener, ws.observedFailure(first), at, "no listener on port "+strconv.Itoa(h.Call.Port))
	case errors.Is(err, simulation.ErrNoFilterChain):
		ws.end(prediction.ClassTLSRefused, ws.observedFailure(first), at, fmt.Sprintf("no filter chain matches %s (sni %q)", h.Call.TLS, h.Call.SNI))
	case errors.Is(err, simulation.ErrTLSError), errors.Is(err, simulation.ErrMTLSError):
		ws.end(prediction.ClassTLSRefused, ws.observedFailure(first), at, fmt.Sprintf("%s: %s sent to filter chain %s", err, h.Call.TLS, h.FilterChain))
	case errors.Is(err, simulation.ErrProtocolError):
		ws.end(prediction.ClassProtocol, ws.observedFailure(first), at, fmt.Sprintf("%s: %s/%s sent to filter chain %s", err, h.Call.TLS, h.Call.Protocol, h.FilterChain))
	case errors.Is(err, simulation.ErrNoVirtualHost), errors.Is(err, simulation.ErrNoRoute):
		ws.end(prediction.ClassNoRoute, "http(404)", at, fmt.Sprintf("%s (virtual host %q)", err, h.VirtualHost))
		h.Log.ResponseCode, h.Log.ResponseFlags = 404, "NR"
	default:
		ws.end(prediction.ClassNotPredicted, "", at, "simulation: "+err.Error())
		ws.notPredicted("the simulation could not walk " + at + ": " + err.Error())
	}
}

// finishAtOrigin ends a walk whose last proxy leaves the mesh.
func (ws *walkState) finishAtOrigin(e *Env, h *prediction.Hop, up *prediction.UpstreamDesc) {
	o := &prediction.Origin{Port: up.Port, Transport: up.Transport, SNI: up.SNI, Credential: up.Credential, Validation: up.Validation}
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
		if !e.w.HasSecret(ns, secret) {
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
	ws.pred.Outcome = prediction.Outcome{
		Class: prediction.ClassRouted, ClientObserves: "origin", Cluster: up.Cluster, Origin: o,
		Detail: fmt.Sprintf("%s sends to %s:%d over %s (cluster %s)", hopName(h), firstNonEmpty(o.Host, o.Address), o.Port, up.Transport, up.Cluster),
	}
}

func strp(s string) *string { return &s }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func joinNonEmpty(sep string, s ...string) string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return strings.Join(out, sep)
}
