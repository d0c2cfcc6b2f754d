//go:build tools

// Package tools pins the commands the e2e builds from k8s.io/kubernetes into
// this module's graph: the control plane, and the node's kubelet.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
