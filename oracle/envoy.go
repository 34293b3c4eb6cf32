package oracle

import (
	"fmt"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	internalupstream "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// endpointDesc is one upstream endpoint of a cluster.
type endpointDesc struct {
	Address  string // IP or DNS name
	Port     int
	Internal string // envoy internal address (waypoint tunnels), if any
	Metadata *core.Metadata
}

func clusterTypeName(c *cluster.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

func endpointsOf(c *cluster.Cluster, eds map[string]*endpoint.ClusterLoadAssignment) []endpointDesc {
	cla := c.GetLoadAssignment()
	if c.GetType() == cluster.Cluster_EDS {
		cla = eds[c.GetName()]
	}
	var out []endpointDesc
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			addr := lb.GetEndpoint().GetAddress()
			d := endpointDesc{Metadata: lb.GetMetadata()}
			if sa := addr.GetSocketAddress(); sa != nil {
				d.Address = sa.GetAddress()
				d.Port = int(sa.GetPortValue())
			} else if ia := addr.GetEnvoyInternalAddress(); ia != nil {
				d.Internal = ia.GetServerListenerName()
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

// transportDesc is the transport socket a cluster uses towards one endpoint.
type transportDesc struct {
	Kind       string // plaintext | istio-mtls | tls | mutual-tls | other
	SNI        string
	AutoSNI    bool
	Credential string
	// Validation is how the server certificate is verified: an SDS name (kubernetes://..., file-root:...),
	// "inline" or "none".
	Validation string
	By         string
	ALPN       []string
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

func describeSocket(ts *core.TransportSocket) (transportDesc, error) {
	if ts == nil {
		return transportDesc{Kind: "plaintext"}, nil
	}
	// Istio names sockets both ways ("envoy.transport_sockets.tls", "tls"); the typed config decides.
	typeURL := ts.GetTypedConfig().GetTypeUrl()
	switch {
	case strings.HasSuffix(typeURL, ".RawBuffer"), ts.GetTypedConfig() == nil && strings.HasSuffix(ts.GetName(), "raw_buffer"):
		return transportDesc{Kind: "plaintext"}, nil
	case strings.HasSuffix(typeURL, ".InternalUpstreamTransport"):
		iu := &internalupstream.InternalUpstreamTransport{}
		if err := ts.GetTypedConfig().UnmarshalTo(iu); err != nil {
			return transportDesc{}, err
		}
		return describeSocket(iu.GetTransportSocket())
	case strings.HasSuffix(typeURL, ".UpstreamTlsContext"):
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
			return transportDesc{}, err
		}
		common := ctx.GetCommonTlsContext()
		d := transportDesc{SNI: ctx.GetSni(), ALPN: common.GetAlpnProtocols(), Validation: "none"}
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
	return transportDesc{Kind: "other (" + ts.GetName() + ")"}, nil
}

// transportFor is the transport socket Envoy picks for an endpoint: the cluster's own, or the first of its
// transport_socket_matches whose match is a subset of the endpoint's envoy.transport_socket_match metadata.
func transportFor(c *cluster.Cluster, ep endpointDesc) (transportDesc, error) {
	var d transportDesc
	var err error
	switch {
	case len(c.GetTransportSocketMatches()) > 0:
		found := false
		for _, m := range c.GetTransportSocketMatches() {
			if socketMatches(m.GetMatch(), ep.Metadata) {
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

// upstreamProtocol is the HTTP version a cluster speaks upstream for a request that arrived as downstream.
func upstreamProtocol(c *cluster.Cluster, downstream string) string {
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

func (t transportDesc) String() string {
	s := t.Kind
	if t.SNI != "" {
		s += " sni=" + t.SNI
	}
	if t.AutoSNI {
		s += " sni=auto"
	}
	if t.Credential != "" {
		s += " credential=" + t.Credential
	}
	return s
}

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

func errf(format string, a ...any) error { return fmt.Errorf(format, a...) }
