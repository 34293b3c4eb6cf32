// Command coredns is CoreDNS v1.13.1 with only the plugins the cluster's Corefile uses: kubeadm's (errors,
// health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance), the harness's
// external-world block (hosts), and log, rewrite and template for debugging. The cloud-provider plugins,
// whose SDKs are most of a full build, are left out. main is CoreDNS's own coredns.go without the
// all-plugins import.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
