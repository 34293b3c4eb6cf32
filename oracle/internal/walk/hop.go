package walk

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xdstest"

	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/rbac"
)

// hopRun is one proxy's handling of one call.
type hopRun struct {
	ps     *proxySim
	call   simulation.Call
	res    simulation.Result
	chains []*listener.FilterChain
	isHTTP bool
}

// run walks a call through the proxy and finds the filter chain(s) it matched.
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
func (hr hopRun) rbac(in rbac.Input) *prediction.RBACResult {
	if len(hr.chains) == 0 {
		return nil
	}
	var res *prediction.RBACResult
	for _, fc := range hr.chains {
		r := rbac.Evaluate(fc, in)
		if res != nil && (res.Decision != r.Decision || res.Policy != r.Policy) {
			return &prediction.RBACResult{Decision: "unknown", Reason: "several filter chains named " + chainName(hr.res.FilterChainMatched) + " disagree"}
		}
		res = r
	}
	if res != nil && len(res.Filters) == 0 {
		return nil
	}
	return res
}

// hop is the prediction of this run, before the walk adds what follows from it.
func (hr hopRun) hop() prediction.Hop {
	h := prediction.Hop{
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

// pathMatches tells whether a route's path matcher matches a path.
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
