package rbac

import (
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The matcher shapes below are those istiod emits (pilot/pkg/security/authz/model): a namespace becomes a
// principal regex, a principal an exact spiffe URI, a method an exact :method header, a host a
// case-insensitive :authority match, a path a url_path matcher.

func nsPrincipal(ns string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: ".*/ns/" + ns + "/.*"}}},
	}}}
}

func filterStatePrincipal(exact string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcher.FilterStateMatcher{
		Key:     PeerPrincipalKey,
		Matcher: &matcher.FilterStateMatcher_StringMatch{StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: exact}}},
	}}}
}

func methodPermission(m string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &route.HeaderMatcher{
		Name: ":method", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: m}}},
	}}}
}

func hostAndPath(host, path string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
		{Rule: &rbacv3.Permission_Header{Header: &route.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{
			StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: host}, IgnoreCase: true},
		}}}},
		{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: path}}}}}},
	}}}}
}

var anyPermission = &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}

func rules(action rbacv3.RBAC_Action, perm *rbacv3.Permission, pr *rbacv3.Principal) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{
		"ns[istio-system]-policy[p]-rule[0]": {Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{pr}},
	}}
}

func request(principal, method, host, path string) Input {
	return Input{Principal: principal, HTTP: true, Headers: map[string]string{":method": method, ":authority": host, ":path": path}}
}

func TestRBACDecisions(t *testing.T) {
	frontend := "spiffe://cluster.local/ns/demo-frontend/sa/sleep"
	other := "spiffe://cluster.local/ns/default/sa/sleep"
	anyone := &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	cases := []struct {
		name  string
		rules *rbacv3.RBAC
		in    Input
		deny  bool
	}{
		{"DENY namespace matches its caller", rules(rbacv3.RBAC_DENY, anyPermission, nsPrincipal("demo-frontend")), request(frontend, "HEAD", "www.aliyun.com", "/"), true},
		{"DENY namespace spares another namespace", rules(rbacv3.RBAC_DENY, anyPermission, nsPrincipal("demo-frontend")), request(other, "HEAD", "www.aliyun.com", "/"), false},
		{"DENY namespace cannot match a caller without mTLS", rules(rbacv3.RBAC_DENY, anyPermission, nsPrincipal("demo-frontend")), request("", "HEAD", "www.aliyun.com", "/"), false},
		{"DENY POST denies POST", rules(rbacv3.RBAC_DENY, methodPermission("POST"), anyone), request(other, "POST", "httpbin.org", "/post"), true},
		{"DENY POST lets GET through", rules(rbacv3.RBAC_DENY, methodPermission("POST"), anyone), request(other, "GET", "httpbin.org", "/get"), false},
		{"DENY host+path, host case-insensitive, query ignored", rules(rbacv3.RBAC_DENY, hostAndPath("test.com", "/headers"), anyone), request(other, "GET", "Test.COM", "/headers?x=1"), true},
		{"DENY host+path spares another path", rules(rbacv3.RBAC_DENY, hostAndPath("test.com", "/headers"), anyone), request(other, "GET", "test.com", "/status/200"), false},
		{"ALLOW denies what no policy allows", rules(rbacv3.RBAC_ALLOW, methodPermission("GET"), anyone), request(other, "POST", "x", "/"), true},
		{"ALLOW allows what a policy allows", rules(rbacv3.RBAC_ALLOW, methodPermission("GET"), anyone), request(other, "GET", "x", "/"), false},
		{"waypoint principal from filter state", rules(rbacv3.RBAC_DENY, anyPermission, filterStatePrincipal(frontend)),
			Input{FilterState: map[string]string{PeerPrincipalKey: frontend}, HTTP: true, Headers: map[string]string{}}, true},
		{"HTTP-only permission never matches TCP", rules(rbacv3.RBAC_DENY, methodPermission("POST"), anyone), Input{Principal: other}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			deny, _, err := decide(tc.rules, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if deny != tc.deny {
				t.Fatalf("deny = %v, want %v", deny, tc.deny)
			}
		})
	}
}

func TestRBACUnsupportedMatcherIsUnknown(t *testing.T) {
	meta := &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcher.MetadataMatcher{Filter: "envoy.filters.http.jwt_authn"}}}
	_, _, err := decide(rules(rbacv3.RBAC_ALLOW, anyPermission, meta), request("", "GET", "x", "/"))
	if err == nil {
		t.Fatal("a JWT metadata matcher must make the decision unknown, not allow or deny")
	}
}
