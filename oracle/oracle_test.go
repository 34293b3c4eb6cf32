// Package oracle is the routing oracle's entry points: a `go test` binary (Istio's request simulation needs
// a *testing.T) whose tests are its commands. See README.md; the work is in internal/.
package oracle

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/simulation"
	istiolog "istio.io/istio/pkg/log"

	"egress-conformance.io/oracle/internal/istioctl"
	"egress-conformance.io/oracle/internal/manifest"
	"egress-conformance.io/oracle/internal/plan"
	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/walk"
	"egress-conformance.io/oracle/internal/world"
)

var (
	planFlag        = flag.String("oracle.plan", "", "plan.json to predict")
	outFlag         = flag.String("oracle.out", "", "where to write the predictions (JSON)")
	analyzeFlag     = flag.Bool("oracle.analyze", true, "run istioctl analyze over every probe state")
	onlyCheckFlag   = flag.String("oracle.check", "", "predict only this check ID")
	manifestsFlag   = flag.String("oracle.manifests", "", "directory holding the IstioOperator overlays sidecar.yaml and ambient.yaml")
	tagFlag         = flag.String("oracle.tag", "", "image tag for manifest generate (default: the branch's release)")
	hubFlag         = flag.String("oracle.hub", "docker.io/istio", "image hub for manifest generate")
	manifestOut     = flag.String("oracle.manifest-out", "", "where to write the manifest-generate summary (JSON)")
	istioctlFlag    = flag.String("oracle.istioctl", "", "one istioctl command line, as a JSON array of arguments")
	istioctlOutFlag = flag.String("oracle.istioctl-out", "", "where to write its stdout, stderr and exit code (JSON)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The fake control plane logs every push and complains about CRD annotations of its own fake cluster;
	// the oracle's output is its JSON file, and a failed state is reported there.
	opts := istiolog.DefaultOptions()
	opts.SetDefaultOutputLevel(istiolog.OverrideScopeName, istiolog.NoneLevel)
	_ = istiolog.Configure(opts)
	os.Exit(m.Run())
}

// branchInfo names the Istio code this binary was built from.
type branchInfo struct {
	Module, Version, Branch, ProxyVersion, Release string
}

var knownBranches = map[string]branchInfo{
	"v0.0.0-20260826214018-9739e10eb9d7": {Branch: "release-1.30", ProxyVersion: "1.30.3", Release: "1.30.3"},
	"v0.0.0-20260827124520-eed52ebb66ad": {Branch: "release-1.31", ProxyVersion: "1.31.0", Release: "1.31.0-rc.0"},
}

// istioBranch reads the istio.io/istio version this binary was built from out of the source path the Go
// toolchain records for Istio's functions (module cache path, or module@version with -trimpath): test
// binaries carry no module build info.
func istioBranch() branchInfo {
	file, _ := runtime.FuncForPC(reflect.ValueOf(simulation.NewSimulation).Pointer()).FileLine(reflect.ValueOf(simulation.NewSimulation).Pointer())
	version := "unknown"
	if m := regexp.MustCompile(`istio\.io/istio@([^/]+)/`).FindStringSubmatch(file); m != nil {
		version = m[1]
	}
	b, ok := knownBranches[version]
	if !ok {
		b = branchInfo{Branch: "unknown", ProxyVersion: "1.30.0", Release: "1.30.0"}
	}
	b.Module, b.Version = "istio.io/istio", version
	return b
}

func writeJSON(t *testing.T, path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if path == "" {
		fmt.Println(string(b))
		return
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPredict is the oracle: -oracle.plan=plan.json -oracle.out=predictions.json.
func TestPredict(t *testing.T) {
	if *planFlag == "" {
		t.Skip("no -oracle.plan given")
	}
	p, err := plan.Load(*planFlag)
	if err != nil {
		t.Fatal(err)
	}
	b := istioBranch()
	preds := prediction.Predictions{APIVersion: "egress-conformance.io/v1alpha1", Kind: "Predictions",
		IstioModule: b.Module + "@" + b.Version, IstioBranch: b.Branch, PlanIstio: p.IstioVersion,
		Probes: []prediction.Probe{}, Analysis: []prediction.StateAnalysis{}, Skipped: []prediction.CheckNote{}}
	dir := t.TempDir()
	for ci := range p.Checks {
		c := &p.Checks[ci]
		if *onlyCheckFlag != "" && c.ID != *onlyCheckFlag {
			continue
		}
		if c.NotApplicable != "" {
			preds.Skipped = append(preds.Skipped, prediction.CheckNote{Check: c.ID, Mode: c.Mode, Reason: "not applicable: " + c.NotApplicable})
			continue
		}
		points, err := plan.Replay(p, c)
		if err != nil {
			preds.Skipped = append(preds.Skipped, prediction.CheckNote{Check: c.ID, Mode: c.Mode, Reason: err.Error()})
			continue
		}
		// One fake istiod per distinct state, in the order the probes run.
		var order []string
		groups := map[string][]plan.ProbePoint{}
		for _, pp := range points {
			fp := pp.State.Fingerprint(c.Mode)
			if _, ok := groups[fp]; !ok {
				order = append(order, fp)
			}
			groups[fp] = append(groups[fp], pp)
		}
		for _, fp := range order {
			pps := groups[fp]
			w := world.Build(p, c, pps[0].State)
			var got []prediction.Probe
			completed := false
			failure := "the fake istiod failed on this state's configuration (see the oracle's log)"
			var rejected *world.RejectedError
			if err := w.Validate(); errors.As(err, &rejected) {
				for _, pp := range pps {
					got = append(got, unwalked(c, pp, fp, prediction.Outcome{Class: prediction.ClassRejected, Detail: rejected.Error()}))
				}
				completed = true
			} else if err != nil {
				failure = err.Error()
			} else {
				t.Run(c.ID+"/"+c.Mode+"/"+fp, func(t *testing.T) {
					env := walk.NewEnv(t, w, b.ProxyVersion)
					for _, pp := range pps {
						got = append(got, env.Predict(pp))
					}
					completed = true
				})
			}
			if !completed {
				got = nil
				for _, pp := range pps {
					pred := unwalked(c, pp, fp, prediction.Outcome{Class: prediction.ClassNotPredicted, Detail: "istiod could not be simulated for this state"})
					pred.NotPredicted = []string{failure}
					got = append(got, pred)
				}
			}
			preds.Probes = append(preds.Probes, got...)
			if *analyzeFlag {
				sa := istioctl.Analyze(w, dir)
				sa.State = fp
				for _, pp := range pps {
					sa.Probes = append(sa.Probes, pp.Action.Probe)
				}
				preds.Analysis = append(preds.Analysis, sa)
			}
		}
	}
	writeJSON(t, *outFlag, preds)
}

// unwalked is the prediction for a probe of a state that could not be simulated.
func unwalked(c *plan.Check, pp plan.ProbePoint, fp string, o prediction.Outcome) prediction.Probe {
	return prediction.Probe{Check: c.ID, Mode: c.Mode, Probe: pp.Action.Probe, Seq: pp.Action.Seq, Hops: []prediction.Hop{},
		Client: pp.Action.Client, Display: pp.Action.Request.Display, State: fp, Outcome: o}
}

// TestManifestGenerate renders manifests/istio/{sidecar,ambient}.yaml with this branch's istioctl.
func TestManifestGenerate(t *testing.T) {
	if *manifestsFlag == "" {
		t.Skip("no -oracle.manifests given")
	}
	b := istioBranch()
	tag := *tagFlag
	if tag == "" {
		tag = b.Release
	}
	var p *plan.Plan
	if *planFlag != "" {
		loaded, err := plan.Load(*planFlag)
		if err != nil {
			t.Fatal(err)
		}
		p = loaded
	}
	var out []*manifest.Summary
	for _, name := range []string{"sidecar.yaml", "ambient.yaml"} {
		overlay := filepath.Join(*manifestsFlag, name)
		objs, stderr, err := manifest.Generate(overlay, tag, *hubFlag)
		if err != nil {
			t.Errorf("%v", err)
			out = append(out, &manifest.Summary{Overlay: name, Failures: []string{err.Error()}})
			continue
		}
		s := manifest.Summarize(overlay, objs)
		if strings.HasPrefix(name, "sidecar") {
			s.CheckSidecarOverlay(objs)
			if p != nil {
				s.CheckPlanGateway(p)
			}
		} else {
			s.CheckAmbientOverlay(objs)
		}
		for _, f := range s.Failures {
			t.Errorf("%s: %s", name, f)
		}
		if strings.TrimSpace(stderr) != "" {
			t.Logf("%s: istioctl stderr: %s", name, strings.TrimSpace(stderr))
		}
		out = append(out, s)
	}
	if *manifestOut != "" {
		writeJSON(t, *manifestOut, map[string]any{"istioModule": b.Module + "@" + b.Version, "istioBranch": b.Branch, "tag": tag, "overlays": out})
	}
}

// TestIstioctl runs one command line of this branch's istioctl in this process (istioctl's own root
// command), for callers that need istioctl itself — e.g. `analyze` against a live API server.
func TestIstioctl(t *testing.T) {
	if *istioctlFlag == "" {
		t.Skip("no -oracle.istioctl given")
	}
	var args []string
	if err := json.Unmarshal([]byte(*istioctlFlag), &args); err != nil {
		t.Fatalf("-oracle.istioctl: %v", err)
	}
	stdout, stderr, code := istioctl.Run(args...)
	writeJSON(t, *istioctlOutFlag, map[string]any{"stdout": stdout, "stderr": stderr, "exitCode": code})
}
