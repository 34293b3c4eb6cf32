package walk

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"istio.io/istio/pilot/pkg/simulation"

	"egress-conformance.io/oracle/internal/plan"
	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/world"
)

// parsedRequest is a probe's curl request as the client sends it.
type parsedRequest struct {
	scheme, host, path, method, authority string
	port                                  int
	headers                               map[string]string
}

// parseRequest reads a probe's URL, method and headers.
func parseRequest(r *plan.Request) (parsedRequest, error) {
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

// tls tells whether the client itself speaks TLS (https URL).
func (pr parsedRequest) tls() bool { return pr.scheme == "https" }

// httpHeaders are the request headers the simulation is given (Host travels separately).
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

// spiffe is the identity of a service account in the mesh.
func spiffe(ns, sa string) string {
	if sa == "" {
		sa = "default"
	}
	return "spiffe://" + world.ClusterDomain + "/ns/" + ns + "/sa/" + sa
}

// callDesc describes a call as the proxy receiving it sees it.
func callDesc(c simulation.Call, method, principal string) *prediction.CallDesc {
	c = c.FillDefaults()
	return &prediction.CallDesc{
		Address: c.Address, Port: c.Port, Protocol: string(c.Protocol), TLS: string(c.TLS), SNI: c.Sni, ALPN: c.Alpn,
		Host: c.Headers.Get("Host"), Path: c.Path, Method: method, Principal: principal,
	}
}

// logHTTP is the authority and method an access-log entry carries (none for a TCP proxy).
func logHTTP(isHTTP bool, req parsedRequest) (string, string) {
	if !isHTTP {
		return "", ""
	}
	return req.authority, req.method
}
