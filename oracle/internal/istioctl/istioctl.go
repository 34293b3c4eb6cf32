// Package istioctl runs the branch's own istioctl in this process, and istioctl analyze over a state.
package istioctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"istio.io/istio/istioctl/cmd"

	"egress-conformance.io/oracle/internal/prediction"
	"egress-conformance.io/oracle/internal/world"
)

var mu sync.Mutex

// Run runs istioctl's own root command in this process (the same code as the istioctl binary of this
// Istio branch), returning its stdout, stderr and exit code.
func Run(args ...string) (string, string, int) {
	mu.Lock()
	defer mu.Unlock()
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

type analyzeJSON struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Origin  string `json:"origin"`
	Message string `json:"message"`
}

// Analyze runs `istioctl analyze --use-kube=false` over one state's documents, written to dir.
func Analyze(w *world.World, dir string) prediction.StateAnalysis {
	sa := prediction.StateAnalysis{Check: w.Check.ID}
	file := filepath.Join(dir, "state.yaml")
	if err := os.WriteFile(file, []byte(strings.Join(w.AnalysisDocs(), "\n---\n")), 0o600); err != nil {
		sa.Error = err.Error()
		return sa
	}
	stdout, stderr, code := Run("analyze", "--use-kube=false", "-o", "json", "--output-threshold", "Info", file)
	sa.ExitCode = code
	var msgs []analyzeJSON
	if s := strings.TrimSpace(stdout); s != "" {
		if err := json.Unmarshal([]byte(s), &msgs); err != nil {
			sa.Error = fmt.Sprintf("unreadable analyze output: %v: %s", err, s)
		}
	}
	for _, m := range msgs {
		sa.Messages = append(sa.Messages, prediction.AnalysisMessage{Code: m.Code, Level: m.Level, Origin: m.Origin, Message: m.Message})
	}
	if code != 0 && code != cmd.ExitAnalyzerFoundIssues {
		sa.Error = strings.TrimSpace(joinNonEmpty("; ", sa.Error, stderr))
	}
	return sa
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
