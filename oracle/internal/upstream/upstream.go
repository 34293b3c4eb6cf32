// Package upstream reads, out of a cluster istiod pushed, where and how Envoy connects upstream: the
// cluster's endpoints, the transport socket it picks for one endpoint, the HTTP version it speaks.
package upstream

import (
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	internalupstream "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Endpoint is one upstream endpoint of a cluster.
type Endpoint struct {
	Address  string // IP or DNS name (for an envoy internal address, the tunnel's destination)
	Port     int
	metadata *core.Metadata
}

// ClusterType names a cluster's discovery type (or its custom cluster type).
func ClusterType(c *cluster.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

// Endpoints lists a cluster's endpoints: its own load assignment, or for EDS the one in eds.
func Endpoints(c *cluster.Cluster, eds map[string]*endpoint.ClusterLoadAssignment) []Endpoint {
	cla := c.GetLoadAssignment()
	if c.GetType() == cluster.Cluster_EDS {
		cla = eds[c.GetName()]
	}
	var out []Endpoint
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			addr := lb.GetEndpoint().GetAddress()
			d := Endpoint{metadata: lb.GetMetadata()}
			if sa := addr.GetSocketAddress(); sa != nil {
				d.Address = sa.GetAddress()
				d.Port = int(sa.GetPortValue())
			} else if addr.GetEnvoyInternalAddress() != nil {
				// The tunnel target is in the endpoint's metadata (tunnel address "ip:port").
				if tun := lb.GetMetadata().GetFilterMetadata()["tunnel"]; tun != nil {
					if v := tun.GetFields()["destination"].GetStringValue(); v != "" {
						d.Address = v
					}
				}
			}
			out = append(out, d)
		}
	}
	return out
}

// Transport is the transport socket a cluster uses towards one endpoint.
type Transport struct {
	Kind       string // plaintext | istio-mtls | tls | mutual-tls | other
	SNI        string
	AutoSNI    bool
	Credential string
	// Validation is how the server certificate is verified: an SDS name (kubernetes://..., file-root:...),
	// "inline" or "none".
	Validation string
	By         string
}

func socketMatches(match *structpb.Struct, md *core.Metadata) bool {
	want := match.GetFields()
	if len(want) == 0 {
		return true
	}
	have := md.GetFilterMetadata()["envoy.transport_socket_match"].GetFields()
	for k, v := range want {
		hv, ok := have[k]
		if !ok || hv.GetStringValue() != v.GetStringValue() {
			return false
		}
	}
	return true
}

func describeSocket(ts *core.TransportSocket) (Transport, error) {
	if ts == nil {
		return Transport{Kind: "plaintext"}, nil
	}
	// Istio names sockets both ways ("envoy.transport_sockets.tls", "tls"); the typed config decides.
	typeURL := ts.GetTypedConfig().GetTypeUrl()
	switch {
	case strings.HasSuffix(typeURL, ".RawBuffer"), ts.GetTypedConfig() == nil && strings.HasSuffix(ts.GetName(), "raw_buffer"):
		return Transport{Kind: "plaintext"}, nil
	case strings.HasSuffix(typeURL, ".InternalUpstreamTransport"):
		iu := &internalupstream.InternalUpstreamTransport{}
		if err := ts.GetTypedConfig().UnmarshalTo(iu); err != nil {
			return Transport{}, err
		}
		return describeSocket(iu.GetTransportSocket())
	case strings.HasSuffix(typeURL, ".UpstreamTlsContext"):
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
			return Transport{}, err
		}
		common := ctx.GetCommonTlsContext()
		d := Transport{SNI: ctx.GetSni(), Validation: "none"}
		switch {
		case common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig() != nil:
			d.Validation = common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName()
		case common.GetValidationContextSdsSecretConfig() != nil:
			d.Validation = common.GetValidationContextSdsSecretConfig().GetName()
		case common.GetValidationContext() != nil, common.GetCombinedValidationContext().GetDefaultValidationContext().GetTrustedCa() != nil:
			d.Validation = "inline"
		}
		certs := common.GetTlsCertificateSdsSecretConfigs()
		switch {
		case len(certs) > 0 && certs[0].GetName() == "default":
			d.Kind = "istio-mtls"
		case len(certs) > 0:
			d.Kind = "mutual-tls"
			d.Credential = certs[0].GetName()
		case len(ctx.GetCommonTlsContext().GetTlsCertificates()) > 0:
			d.Kind = "mutual-tls"
			d.Credential = "inline/file certificate"
		default:
			d.Kind = "tls"
		}
		return d, nil
	}
	return Transport{Kind: "other (" + ts.GetName() + ")"}, nil
}

// TransportFor is the transport socket Envoy picks for an endpoint: the cluster's own, or the first of its
// transport_socket_matches whose match is a subset of the endpoint's envoy.transport_socket_match metadata.
func TransportFor(c *cluster.Cluster, ep Endpoint) (Transport, error) {
	var d Transport
	var err error
	switch {
	case len(c.GetTransportSocketMatches()) > 0:
		found := false
		for _, m := range c.GetTransportSocketMatches() {
			if socketMatches(m.GetMatch(), ep.metadata) {
				d, err = describeSocket(m.GetTransportSocket())
				d.By = "transportSocketMatches[" + m.GetName() + "]"
				found = true
				break
			}
		}
		if !found {
			d, err = describeSocket(c.GetTransportSocket())
			d.By = "transportSocket (no match)"
		}
	default:
		d, err = describeSocket(c.GetTransportSocket())
		if c.GetTransportSocket() != nil {
			d.By = "transportSocket"
		}
	}
	if err != nil {
		return d, err
	}
	if opts := httpOptions(c); opts != nil && opts.GetUpstreamHttpProtocolOptions().GetAutoSni() {
		d.AutoSNI = true
	}
	return d, nil
}

func httpOptions(c *cluster.Cluster) *httpopts.HttpProtocolOptions {
	anyOpts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		return nil
	}
	o := &httpopts.HttpProtocolOptions{}
	if err := anyOpts.UnmarshalTo(o); err != nil {
		return nil
	}
	return o
}

// Protocol is the HTTP version a cluster speaks upstream for a request that arrived as downstream.
func Protocol(c *cluster.Cluster, downstream string) string {
	o := httpOptions(c)
	if o == nil {
		return downstream
	}
	switch pc := o.GetUpstreamProtocolOptions().(type) {
	case *httpopts.HttpProtocolOptions_ExplicitHttpConfig_:
		if pc.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
			return "http2"
		}
		return "http"
	case *httpopts.HttpProtocolOptions_UseDownstreamProtocolConfig:
		return downstream
	case *httpopts.HttpProtocolOptions_AutoConfig:
		return downstream
	}
	return downstream
}
