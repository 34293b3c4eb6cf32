package oracle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"istio.io/istio/istioctl/cmd"
)

var istioctlMu sync.Mutex

// RunIstioctl runs istioctl's own root command in this process (the same code as the istioctl binary of
// this Istio branch), returning its stdout, stderr and exit code.
func RunIstioctl(args ...string) (string, string, int) {
	istioctlMu.Lock()
	defer istioctlMu.Unlock()
	root := cmd.GetRootCmd(args)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	code := 0
	if err := root.Execute(); err != nil {
		code = cmd.GetExitCode(err)
		if code == 0 {
			code = 1
		}
		if !strings.Contains(errb.String(), err.Error()) {
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

// analysisDocs are the documents istioctl analyze gets for one state: every applied object istiod would
// read, each with its namespace, plus the namespaces and the egress gateway's Service and Pod.
func analysisDocs(w *World) []string {
	var docs []string
	var names []string
	for n := range w.Namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		docs = append(docs, toYAML(map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": n, "labels": w.Namespaces[n]},
		}))
	}
	if w.Check.Mode == "sidecar" {
		g := w.Plan.EgressGateway
		objs := gatewayObjects(g, w.GatewayPodIP, w.GatewaySvcIP)
		docs = append(docs, objs[0], objs[1])
	}
	for _, r := range w.State.Resources {
		if r.Namespace == w.Plan.ExternalWorld.Namespace && r.Namespace != "" {
			continue
		}
		switch classify(r) {
		case kindConfig:
			docs = append(docs, toYAML(r.Object))
		case kindKube:
			if r.Kind == "Namespace" {
				continue
			}
			if r.Kind == "Secret" {
				// Only the name matters to the analyzers; the key material stays out of the files.
				docs = append(docs, toYAML(map[string]any{"apiVersion": "v1", "kind": "Secret",
					"metadata": map[string]any{"name": r.Name, "namespace": r.Namespace}, "type": nested(r.Object, "type")}))
				continue
			}
			docs = append(docs, toYAML(r.Object))
		}
	}
	return docs
}

type analyzeJSON struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Origin  string `json:"origin"`
	Message string `json:"message"`
}

// Analyze runs `istioctl analyze --use-kube=false` over one state's documents.
func Analyze(w *World, dir string) StateAnalysis {
	sa := StateAnalysis{Check: w.Check.ID}
	file := filepath.Join(dir, "state.yaml")
	if err := os.WriteFile(file, []byte(strings.Join(analysisDocs(w), "\n---\n")), 0o600); err != nil {
		sa.Error = err.Error()
		return sa
	}
	stdout, stderr, code := RunIstioctl("analyze", "--use-kube=false", "-o", "json", "--output-threshold", "Info", file)
	sa.ExitCode = code
	var msgs []analyzeJSON
	if s := strings.TrimSpace(stdout); s != "" {
		if err := json.Unmarshal([]byte(s), &msgs); err != nil {
			sa.Error = fmt.Sprintf("unreadable analyze output: %v: %s", err, s)
		}
	}
	for _, m := range msgs {
		sa.Messages = append(sa.Messages, AnalysisMessage{Code: m.Code, Level: m.Level, Origin: m.Origin, Message: m.Message})
	}
	if code != 0 && code != 79 {
		sa.Error = strings.TrimSpace(joinNonEmpty("; ", sa.Error, stderr))
	}
	return sa
}

// RenderedObject is one document of `istioctl manifest generate`.
type RenderedObject map[string]any

func (o RenderedObject) kindName() (string, string, string) {
	md, _ := o["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	kind, _ := o["kind"].(string)
	return kind, ns, name
}

// ManifestGenerate renders an IstioOperator overlay with `istioctl manifest generate`.
func ManifestGenerate(overlay, tag, hub string) ([]RenderedObject, string, error) {
	stdout, stderr, code := RunIstioctl("manifest", "generate", "-f", overlay, "--set", "tag="+tag, "--set", "hub="+hub)
	if code != 0 {
		return nil, stderr, fmt.Errorf("istioctl manifest generate -f %s: exit %d: %s", overlay, code, stderr)
	}
	var objs []RenderedObject
	for _, doc := range strings.Split(stdout, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o RenderedObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, stderr, fmt.Errorf("rendered document: %w", err)
		}
		if len(o) == 0 {
			continue
		}
		objs = append(objs, o)
	}
	return objs, stderr, nil
}
