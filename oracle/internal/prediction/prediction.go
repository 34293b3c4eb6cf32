// Package prediction is the oracle's output, predictions.json; Python (conformance/engine/oracle.py) reads
// it. The JSON tags here are that file's format.
package prediction

// Outcome classes.
const (
	ClassRouted         = "routed"              // reached an origin (through the proxies listed in hops)
	ClassDirect         = "direct"              // no mesh proxy on the path: the client reaches the origin itself
	ClassBlockAll       = "block_all"           // Envoy's own 502 from the REGISTRY_ONLY catch-all route
	ClassBlackHole      = "blackhole"           // BlackHoleCluster: TCP/TLS connection closed
	ClassNoRoute        = "no-route"            // 404 NR
	ClassNoCluster      = "no-cluster"          // 503 NC: the route names a cluster absent from CDS
	ClassNoEndpoint     = "no-healthy-upstream" // 503 UH: the cluster has no endpoints
	ClassTLSRefused     = "tls-refused"         // the next hop has no filter chain for what is sent (or TLS mismatch)
	ClassNoListener     = "no-listener"         // nothing listens on the next hop's port
	ClassProtocol       = "protocol-error"      // TLS sent into a plaintext HTTP chain, or TCP into HTTP
	ClassRBACDeny       = "rbac-deny"           // envoy.filters.http.rbac / network rbac denies
	ClassLoop           = "loop"                // the gateway forwards to itself (ServiceEntry resolution NONE)
	ClassDirectResponse = "direct-response"     // a route answers with a fixed status (VirtualService directResponse)
	ClassRejected       = "config-rejected"     // Istio's validation refuses the state's configuration
	ClassNotPredicted   = "not-predicted"
)

// Hop is what one proxy does with the request.
type Hop struct {
	Proxy     string `json:"proxy"`    // sidecar | egress-gateway | waypoint | ztunnel
	Workload  string `json:"workload"` // namespace/name of the proxy's workload
	Simulated bool   `json:"simulated"`

	// What reaches this proxy.
	Call *CallDesc `json:"call,omitempty"`

	Listener     string      `json:"listener,omitempty"`
	FilterChain  string      `json:"filterChain,omitempty"`
	RouteConfig  string      `json:"routeConfig,omitempty"`
	VirtualHost  string      `json:"virtualHost,omitempty"`
	Route        string      `json:"route,omitempty"`
	Cluster      string      `json:"cluster,omitempty"`
	ClusterFound *bool       `json:"clusterInCDS,omitempty"`
	Error        string      `json:"error,omitempty"`
	RBAC         *RBACResult `json:"rbac,omitempty"`

	// Where this proxy sends the request next.
	Upstream *UpstreamDesc `json:"upstream,omitempty"`
	// What this proxy's access-log entry would carry.
	Log  Log    `json:"log"`
	Note string `json:"note,omitempty"`
}

// CallDesc is the request as one proxy receives it.
type CallDesc struct {
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // http | http2 | tcp
	TLS      string `json:"tls"`      // plaintext | tls | mtls
	SNI      string `json:"sni,omitempty"`
	ALPN     string `json:"alpn,omitempty"`
	Host     string `json:"host,omitempty"`
	Path     string `json:"path,omitempty"`
	Method   string `json:"method,omitempty"`
	// Principal is the caller's identity as this proxy sees it (spiffe URI), empty without mTLS/HBONE.
	Principal string `json:"principal,omitempty"`
}

// UpstreamDesc is the connection a proxy opens for the request.
type UpstreamDesc struct {
	Cluster     string `json:"cluster"`
	ClusterType string `json:"clusterType,omitempty"`
	Address     string `json:"address,omitempty"` // ip or DNS name the cluster connects to
	Port        int    `json:"port,omitempty"`
	Transport   string `json:"transport"` // plaintext | istio-mtls | tls | mutual-tls | client-bytes
	SNI         string `json:"sni,omitempty"`
	Credential  string `json:"credential,omitempty"`
	Validation  string `json:"validation,omitempty"`
	TransportBy string `json:"transportBy,omitempty"` // which part of the cluster chose the transport
	Next        string `json:"next"`                  // egress-gateway | origin | self | mesh-workload | none
	NextName    string `json:"nextName,omitempty"`
}

// Log is the access-log fields one proxy would write for the request ("" = not predicted,
// null upstream_cluster = Envoy records no upstream cluster).
type Log struct {
	// Entry is "unknown" when the oracle does not predict whether this proxy logs the request at all (a
	// connection that matches no filter chain).
	Entry                string  `json:"entry,omitempty"`
	UpstreamCluster      *string `json:"upstream_cluster"`
	UpstreamHostPort     int     `json:"upstream_host_port,omitempty"`
	RouteName            string  `json:"route_name,omitempty"`
	ResponseCode         int     `json:"response_code,omitempty"` // only when this proxy answers itself
	ResponseFlags        string  `json:"response_flags,omitempty"`
	Authority            string  `json:"authority,omitempty"`
	Method               string  `json:"method,omitempty"`
	RequestedServerName  string  `json:"requested_server_name,omitempty"`
	DownstreamRemoteHost string  `json:"downstream_remote_host,omitempty"`
}

// RBACResult is the evaluation of the RBAC filters of the matched filter chain.
type RBACResult struct {
	Decision string   `json:"decision"` // allow | deny | unknown
	Policy   string   `json:"policy,omitempty"`
	Filters  []string `json:"filters,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// Outcome is the predicted end of the request.
type Outcome struct {
	Class string `json:"class"`
	// ClientObserves in the catalogue's outcome vocabulary: http(502), tls-reset, http(503), ...;
	// "origin" when the origin answers (its code is the external world's), "loop" when the request never
	// reaches an origin.
	ClientObserves string `json:"clientObserves"`
	// At names the hop (proxy kind and workload) where the request ends, for every class but routed.
	At           string  `json:"at,omitempty"`
	Cluster      string  `json:"cluster,omitempty"` // the last cluster (routed)
	Origin       *Origin `json:"origin,omitempty"`
	BodyContains string  `json:"bodyContains,omitempty"`
	Detail       string  `json:"detail"`
}

// Origin is where the request leaves the mesh.
type Origin struct {
	Host       string `json:"host,omitempty"`    // DNS name the last proxy connects to, if any
	Address    string `json:"address,omitempty"` // address known to the plan's external world
	Port       int    `json:"port"`
	Transport  string `json:"transport"`
	SNI        string `json:"sni,omitempty"`
	Credential string `json:"credential,omitempty"`
	Validation string `json:"validation,omitempty"`
	Known      string `json:"known,omitempty"` // the external-world host(s) at that address
}

// Probe is the oracle's answer for one probe action.
type Probe struct {
	Check     string  `json:"check"`
	Mode      string  `json:"mode"`
	Probe     string  `json:"probe"`
	Seq       int     `json:"seq"`
	Client    string  `json:"client"`
	Dataplane string  `json:"dataplane"`
	Display   string  `json:"display"`
	State     string  `json:"state"`
	Hops      []Hop   `json:"hops"`
	Outcome   Outcome `json:"outcome"`
	// NotPredicted lists why (part of) the result cannot be judged by the oracle.
	NotPredicted []string `json:"notPredicted,omitempty"`
	Assumptions  []string `json:"assumptions,omitempty"`
	Adaptations  []string `json:"adaptations,omitempty"`
}

// AnalysisMessage is one message of istioctl analyze.
type AnalysisMessage struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Origin  string `json:"origin,omitempty"`
	Message string `json:"message"`
}

// StateAnalysis is istioctl analyze over the resources of one state.
type StateAnalysis struct {
	Check    string            `json:"check"`
	State    string            `json:"state"`
	Probes   []string          `json:"probes"`
	ExitCode int               `json:"exitCode"`
	Messages []AnalysisMessage `json:"messages"`
	Error    string            `json:"error,omitempty"`
}

// CheckNote records a check the oracle skipped as a whole.
type CheckNote struct {
	Check  string `json:"check"`
	Mode   string `json:"mode"`
	Reason string `json:"reason"`
}

// Predictions is the file the oracle writes.
type Predictions struct {
	APIVersion  string          `json:"apiVersion"`
	Kind        string          `json:"kind"`
	IstioModule string          `json:"istioModule"`
	IstioBranch string          `json:"istioBranch"`
	PlanIstio   string          `json:"planIstioVersion"`
	Probes      []Probe         `json:"probes"`
	Analysis    []StateAnalysis `json:"analysis"`
	Skipped     []CheckNote     `json:"skipped"`
}
