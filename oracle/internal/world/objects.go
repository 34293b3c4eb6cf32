package world

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"egress-conformance.io/oracle/internal/plan"
)

type ipPool struct {
	used map[string]bool
}

func (p *ipPool) take(base string, start int) string {
	for i := start; i < 250; i++ {
		ip := fmt.Sprintf("%s%d", base, i)
		if !p.used[ip] {
			p.used[ip] = true
			return ip
		}
	}
	panic("address pool exhausted")
}

func toYAML(obj any) string {
	b, err := yaml.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func deepCopy(obj map[string]any) map[string]any {
	b, err := yaml.Marshal(obj)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// PodName is the name of the pod the oracle gives a workload.
func PodName(wl plan.Workload) string { return wl.Name + "-oracle" }

func workloadPod(wl plan.Workload) string {
	annotations := map[string]string{}
	if wl.Dataplane == "sidecar" {
		annotations["sidecar.istio.io/status"] = `{"containers":["istio-proxy"],"initContainers":["istio-init"]}`
	}
	if wl.Dataplane == "ambient" {
		annotations["ambient.istio.io/redirection"] = "enabled"
	}
	sa := wl.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return toYAML(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": PodName(wl), "namespace": wl.Namespace, "labels": wl.Labels, "annotations": annotations},
		"spec":     map[string]any{"serviceAccountName": sa, "nodeName": "oracle-node", "containers": []any{map[string]any{"name": "app", "image": "app"}}},
		"status": map[string]any{
			"phase":      "Running",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"podIP":      wl.IP,
			"podIPs":     []any{map[string]any{"ip": wl.IP}},
		},
	})
}

// GatewayLabels are the pod labels of the egress gateway; the tlsMode label follows the plan's
// egressGateway.tlsModeLabel.
func GatewayLabels(g plan.EgressGateway) map[string]string {
	labels := copyMap(g.PodLabels)
	if g.TLSModeLabel {
		labels[plan.TLSModeLabel] = "istio"
	} else {
		delete(labels, plan.TLSModeLabel)
	}
	return labels
}

func gatewayObjects(g plan.EgressGateway, podIP, svcIP string) []string {
	labels := GatewayLabels(g)
	selector := map[string]string{}
	for _, k := range []string{"app", "istio"} {
		if v, ok := labels[k]; ok {
			selector[k] = v
		}
	}
	var svcPorts, epPorts []any
	for _, pt := range g.Ports {
		proto := pt.Protocol
		if proto == "" {
			proto = "TCP"
		}
		svcPorts = append(svcPorts, map[string]any{"name": pt.Name, "port": pt.Port, "targetPort": pt.TargetPort, "protocol": proto})
		epPorts = append(epPorts, map[string]any{"name": pt.Name, "port": pt.TargetPort, "protocol": proto})
	}
	sa := g.ServiceAccount
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": g.Name + "-oracle", "namespace": g.Namespace, "labels": labels},
		"spec":     map[string]any{"serviceAccountName": sa, "nodeName": "oracle-node", "containers": []any{map[string]any{"name": "istio-proxy", "image": "proxyv2"}}},
		"status": map[string]any{
			"phase":      "Running",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"podIP":      podIP,
			"podIPs":     []any{map[string]any{"ip": podIP}},
		},
	}
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": g.Name, "namespace": g.Namespace, "labels": selector},
		"spec":     map[string]any{"clusterIP": svcIP, "ports": svcPorts, "selector": selector},
	}
	slice := map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata": map[string]any{"name": g.Name + "-oracle", "namespace": g.Namespace,
			"labels": map[string]string{"kubernetes.io/service-name": g.Name}},
		"addressType": "IPv4",
		"endpoints": []any{map[string]any{
			"addresses":  []string{podIP},
			"conditions": map[string]any{"ready": true},
			"targetRef":  map[string]any{"kind": "Pod", "name": g.Name + "-oracle", "namespace": g.Namespace},
		}},
		"ports": epPorts,
	}
	return []string{toYAML(pod), toYAML(svc), toYAML(slice)}
}

func waypointObjects(wp Waypoint) []string {
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": wp.Name, "namespace": wp.Namespace, "labels": map[string]string{
			managedLbl: meshController, gatewayNameLbl: wp.Name, "istio.io/gateway-name": wp.Name,
		}},
		"spec": map[string]any{
			"clusterIP": wp.serviceIP,
			"ports":     []any{map[string]any{"appProtocol": "hbone", "name": "mesh", "port": 15008}},
			"selector":  map[string]string{gatewayNameLbl: wp.Name},
		},
	}
	we := map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": wp.Name + "-oracle", "namespace": wp.Namespace},
		"spec":     map[string]any{"address": wp.PodIP, "labels": map[string]string{gatewayNameLbl: wp.Name}, "serviceAccount": wp.Name},
	}
	return []string{toYAML(svc), toYAML(we)}
}
