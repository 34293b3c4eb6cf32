// Package rbac evaluates, as Envoy would, the RBAC filters of a filter chain istiod built for one request:
// network RBAC, then the HTTP RBAC and ext_authz filters of its HTTP connection manager.
package rbac

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"egress-conformance.io/oracle/internal/prediction"
)

// PeerPrincipalKey is the filter-state key under which a waypoint holds the HBONE peer's principal.
const PeerPrincipalKey = "io.istio.peer_principal"

// Input is what Envoy's RBAC filter sees of a request.
type Input struct {
	// Principal is the peer certificate's URI SAN (authenticated.principal_name); empty without mTLS.
	Principal string
	// FilterState holds string filter-state values (waypoints: io.istio.peer_principal from HBONE).
	FilterState map[string]string
	SourceIP    string
	DestIP      string
	DestPort    int
	SNI         string
	// Headers with lower-case names, including the pseudo-headers :method, :authority and :path.
	Headers map[string]string
	HTTP    bool
}

func (in Input) path() string {
	p := in.Headers[":path"]
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return p
}

// unsupportedError marks a matcher the evaluator does not implement: the decision is then unknown.
type unsupportedError struct{ what string }

func (e unsupportedError) Error() string { return "unsupported RBAC matcher: " + e.what }

func matchString(m *matcher.StringMatcher, v string, present bool) (bool, error) {
	if m == nil {
		return true, nil
	}
	if !present {
		return false, nil
	}
	ic := m.GetIgnoreCase()
	cmp := func(a, b string) (string, string) {
		if ic {
			return strings.ToLower(a), strings.ToLower(b)
		}
		return a, b
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		a, b := cmp(v, p.Exact)
		return a == b, nil
	case *matcher.StringMatcher_Prefix:
		a, b := cmp(v, p.Prefix)
		return strings.HasPrefix(a, b), nil
	case *matcher.StringMatcher_Suffix:
		a, b := cmp(v, p.Suffix)
		return strings.HasSuffix(a, b), nil
	case *matcher.StringMatcher_Contains:
		a, b := cmp(v, p.Contains)
		return strings.Contains(a, b), nil
	case *matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		return re.MatchString(v), nil
	}
	return false, unsupportedError{fmt.Sprintf("string matcher %T", m.GetMatchPattern())}
}

func matchHeader(h *route.HeaderMatcher, in Input) (bool, error) {
	v, present := in.Headers[strings.ToLower(h.GetName())]
	var ok bool
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_StringMatch:
		ok, err = matchString(s.StringMatch, v, present)
	case *route.HeaderMatcher_ExactMatch:
		ok = present && v == s.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		ok = present && strings.HasPrefix(v, s.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		ok = present && strings.HasSuffix(v, s.SuffixMatch)
	case *route.HeaderMatcher_ContainsMatch:
		ok = present && strings.Contains(v, s.ContainsMatch)
	case *route.HeaderMatcher_PresentMatch:
		ok = present == s.PresentMatch
	case nil:
		ok = present
	default:
		return false, unsupportedError{fmt.Sprintf("header matcher %T", s)}
	}
	if err != nil {
		return false, err
	}
	if h.GetInvertMatch() {
		return !ok, nil
	}
	return ok, nil
}

func matchCIDR(r *core.CidrRange, ip string) (bool, error) {
	if ip == "" {
		return false, nil
	}
	pfx, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
	if err != nil {
		return false, err
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false, err
	}
	return pfx.Contains(a), nil
}

func matchPrincipal(p *rbacv3.Principal, in Input) (bool, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return id.Any, nil
	case *rbacv3.Principal_AndIds:
		for _, sub := range id.AndIds.GetIds() {
			ok, err := matchPrincipal(sub, in)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacv3.Principal_OrIds:
		var firstErr error
		for _, sub := range id.OrIds.GetIds() {
			ok, err := matchPrincipal(sub, in)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok {
				return true, nil
			}
		}
		return false, firstErr
	case *rbacv3.Principal_NotId:
		ok, err := matchPrincipal(id.NotId, in)
		return !ok, err
	case *rbacv3.Principal_Authenticated_:
		if in.Principal == "" {
			return false, nil
		}
		return matchString(id.Authenticated.GetPrincipalName(), in.Principal, true)
	case *rbacv3.Principal_FilterState:
		v, present := in.FilterState[id.FilterState.GetKey()]
		if sm := id.FilterState.GetStringMatch(); sm != nil {
			return matchString(sm, v, present)
		}
		return false, unsupportedError{"filter_state matcher without string_match"}
	case *rbacv3.Principal_DirectRemoteIp:
		return matchCIDR(id.DirectRemoteIp, in.SourceIP)
	case *rbacv3.Principal_RemoteIp:
		return matchCIDR(id.RemoteIp, in.SourceIP)
	case *rbacv3.Principal_SourceIp: //nolint:staticcheck // deprecated, still emitted by older builders
		return matchCIDR(id.SourceIp, in.SourceIP)
	case *rbacv3.Principal_Header:
		if !in.HTTP {
			return false, nil
		}
		return matchHeader(id.Header, in)
	case *rbacv3.Principal_UrlPath:
		if !in.HTTP {
			return false, nil
		}
		return matchString(id.UrlPath.GetPath(), in.path(), true)
	}
	return false, unsupportedError{fmt.Sprintf("principal %T", p.GetIdentifier())}
}

func matchPermission(p *rbacv3.Permission, in Input) (bool, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return r.Any, nil
	case *rbacv3.Permission_AndRules:
		for _, sub := range r.AndRules.GetRules() {
			ok, err := matchPermission(sub, in)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacv3.Permission_OrRules:
		var firstErr error
		for _, sub := range r.OrRules.GetRules() {
			ok, err := matchPermission(sub, in)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok {
				return true, nil
			}
		}
		return false, firstErr
	case *rbacv3.Permission_NotRule:
		ok, err := matchPermission(r.NotRule, in)
		return !ok, err
	case *rbacv3.Permission_Header:
		if !in.HTTP {
			return false, nil
		}
		return matchHeader(r.Header, in)
	case *rbacv3.Permission_UrlPath:
		if !in.HTTP {
			return false, nil
		}
		return matchString(r.UrlPath.GetPath(), in.path(), true)
	case *rbacv3.Permission_DestinationIp:
		return matchCIDR(r.DestinationIp, in.DestIP)
	case *rbacv3.Permission_DestinationPort:
		return int(r.DestinationPort) == in.DestPort, nil
	case *rbacv3.Permission_DestinationPortRange:
		return int32(in.DestPort) >= r.DestinationPortRange.GetStart() && int32(in.DestPort) < r.DestinationPortRange.GetEnd(), nil
	case *rbacv3.Permission_RequestedServerName:
		return matchString(r.RequestedServerName, in.SNI, in.SNI != "")
	}
	return false, unsupportedError{fmt.Sprintf("permission %T", p.GetRule())}
}

// evalRules returns the name of the first policy (sorted, as Envoy keeps them in a map) that matches.
func evalRules(rules *rbacv3.RBAC, in Input) (string, error) {
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	var firstErr error
	for _, n := range names {
		pol := rules.GetPolicies()[n]
		if pol.GetCondition() != nil || pol.GetCheckedCondition() != nil {
			return "", unsupportedError{"policy condition (CEL)"}
		}
		permOK := false
		for _, perm := range pol.GetPermissions() {
			ok, err := matchPermission(perm, in)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok {
				permOK = true
				break
			}
		}
		if !permOK {
			continue
		}
		for _, pr := range pol.GetPrincipals() {
			ok, err := matchPrincipal(pr, in)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok {
				return n, nil
			}
		}
	}
	return "", firstErr
}

// decide applies one RBAC filter: ALLOW denies unless a policy matches, DENY denies when one matches.
func decide(rules *rbacv3.RBAC, in Input) (deny bool, policy string, err error) {
	if rules == nil {
		return false, "", nil
	}
	matched, err := evalRules(rules, in)
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		if matched != "" {
			return false, matched, nil
		}
		if err != nil {
			return false, "", err
		}
		return true, "no ALLOW policy matched", nil
	case rbacv3.RBAC_DENY:
		if matched != "" {
			return true, matched, nil
		}
		return false, "", err
	case rbacv3.RBAC_LOG:
		return false, "", nil
	}
	return false, "", unsupportedError{"RBAC action " + rules.GetAction().String()}
}

const (
	httpRBACFilter    = "envoy.filters.http.rbac"
	networkRBACFilter = "envoy.filters.network.rbac"
	extAuthzFilter    = "envoy.filters.http.ext_authz"
)

// Evaluate runs every RBAC filter of a filter chain (network filters, then the HTTP filters of its
// HTTP connection manager, in order) for one request.
func Evaluate(fc *listener.FilterChain, in Input) *prediction.RBACResult {
	res := &prediction.RBACResult{Decision: "allow"}
	step := func(name string, rules *rbacv3.RBAC) bool {
		res.Filters = append(res.Filters, name+"("+rules.GetAction().String()+")")
		deny, pol, err := decide(rules, in)
		if err != nil {
			res.Decision = "unknown"
			res.Reason = err.Error()
			return true
		}
		if deny {
			res.Decision = "deny"
			res.Policy = pol
			return true
		}
		return false
	}
	for _, f := range fc.GetFilters() {
		switch f.GetName() {
		case networkRBACFilter:
			cfg := &rbacnet.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				return &prediction.RBACResult{Decision: "unknown", Reason: err.Error()}
			}
			if cfg.GetMatcher() != nil {
				return &prediction.RBACResult{Decision: "unknown", Reason: "network RBAC with a unified matcher"}
			}
			if step(networkRBACFilter, cfg.GetRules()) {
				return res
			}
		case "envoy.filters.network.http_connection_manager":
			if !in.HTTP {
				continue
			}
			h := &hcm.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				return &prediction.RBACResult{Decision: "unknown", Reason: err.Error()}
			}
			for _, hf := range h.GetHttpFilters() {
				switch hf.GetName() {
				case extAuthzFilter:
					if hf.GetDisabled() {
						continue
					}
					return &prediction.RBACResult{Decision: "unknown", Filters: res.Filters, Reason: "ext_authz (CUSTOM policy) is outside the oracle"}
				case httpRBACFilter:
					cfg := &rbachttp.RBAC{}
					if err := hf.GetTypedConfig().UnmarshalTo(cfg); err != nil {
						return &prediction.RBACResult{Decision: "unknown", Reason: err.Error()}
					}
					if cfg.GetMatcher() != nil {
						return &prediction.RBACResult{Decision: "unknown", Reason: "HTTP RBAC with a unified matcher"}
					}
					if cfg.GetRules() == nil {
						continue
					}
					if step(httpRBACFilter, cfg.GetRules()) {
						return res
					}
				}
			}
		}
	}
	return res
}
