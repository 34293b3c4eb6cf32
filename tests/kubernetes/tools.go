//go:build tools

// Package tools pins the Kubernetes commands the harness's own tests build; it is never compiled.
// tests/real_apiserver.py builds etcd, kube-apiserver and kube-controller-manager; the local-cluster tier
// (tests/local_cluster) builds all of them for its kind node image.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
