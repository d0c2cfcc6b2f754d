// Command node is the e2e control plane's "kubelet": an HTTPS server that
// answers the API server's GET /containerLogs/{ns}/{pod}/{container} exactly as
// the kubelet does, with the kubelet's own log reader (k8s.io/cri-client
// pkg/logs ReadLogs) over CRI-format files that the test writes and rotates.
//
// Pods live under -logs as the kubelet lays them out in /var/log/pods:
// {ns}_{pod}_{uid}/{container}/0.log. A pod without such a folder is not on
// this node.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/cri-client/pkg/logs"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	_ "k8s.io/kubernetes/pkg/apis/core/install" // PodLogOptions from query parameters, as in the kubelet
)

func main() {
	listen := flag.String("listen", "127.0.0.1:10250", "address to serve on")
	cert := flag.String("tls-cert-file", "", "serving certificate")
	key := flag.String("tls-private-key-file", "", "serving key")
	clientCA := flag.String("client-ca-file", "", "CA of the API server's kubelet client certificate")
	root := flag.String("logs", "", "the node's /var/log/pods")
	flag.Parse()
	pem, err := os.ReadFile(*clientCA)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		containerLogs(w, r, *root)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	server := &http.Server{
		Addr:    *listen,
		Handler: mux,
		// The kubelet authenticates the API server by its client certificate
		// (--kubelet-client-certificate), then authorizes it with a SubjectAccessReview.
		TLSConfig: &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
	}
	log.Printf("node serving on %s", *listen)
	log.Fatal(server.ListenAndServeTLS(*cert, *key))
}

// containerLogs follows pkg/kubelet/server/server.go getContainerLogs, then
// pkg/kubelet/kuberuntime/kuberuntime_logs.go ReadLogs (the LogOptions it
// builds: cri-client v0.37 has no NewLogOptions any more).
func containerLogs(w http.ResponseWriter, r *http.Request, root string) {
	ns, pod, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	query := r.URL.Query()
	if tail := query.Get("tail"); tail != "" {
		query["tailLines"] = []string{tail}
		if tail == "all" {
			delete(query, "tailLines")
		}
	}
	apiOpts := &v1.PodLogOptions{}
	if err := legacyscheme.ParameterCodec.DecodeParameters(query, v1.SchemeGroupVersion, apiOpts); err != nil {
		writeError(w, http.StatusBadRequest, `{"message": "Unable to decode query."}`)
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(root, ns+"_"+pod+"_*"))
	if len(dirs) != 1 || strings.ContainsAny(ns+pod, "/*?[") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pod %q does not exist", pod))
		return
	}
	dir := filepath.Join(dirs[0], container)
	if _, err := os.Stat(dir); err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, pod))
		return
	}
	now := time.Now()
	opts := &logs.LogOptions{
		TailLines:  apiOpts.TailLines,
		LimitBytes: apiOpts.LimitBytes,
		Follow:     apiOpts.Follow,
		Timestamp:  apiOpts.Timestamps,
	}
	if apiOpts.SinceSeconds != nil {
		opts.Since = now.Add(-time.Duration(*apiOpts.SinceSeconds) * time.Second)
	}
	if apiOpts.SinceTime != nil && apiOpts.SinceTime.After(opts.Since) {
		opts.Since = apiOpts.SinceTime.Time
	}
	if opts.Follow {
		writeError(w, http.StatusBadRequest, "follow is not supported by this test node")
		return
	}
	w.Header().Set("Transfer-Encoding", "chunked")
	fw := &flushWriter{w}
	// pkg/kubelet/kubelet_pods.go GetKubeletContainerLogs: "Do a zero-byte write
	// to stdout before handing off to the container runtime." Through
	// k8s.io/apiserver/pkg/util/flushwriter that commits and flushes a 200, so an
	// error of ReadLogs below (a log file renamed and not reopened) can no longer
	// change the status: server.go's response.WriteError(400, err) only logs a
	// superfluous WriteHeader and appends the error's text to the 200 body.
	_, _ = fw.Write([]byte{})
	// The restart count is always 0 here: one container instance per pod.
	if err := logs.ReadLogs(r.Context(), filepath.Join(dir, "0.log"), "0", opts, nil, fw, fw); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

// writeError is go-restful's Response.WriteError: the status (ignored by
// net/http once a body began), then the text.
func writeError(w http.ResponseWriter, status int, text string) {
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

// flushWriter is k8s.io/apiserver/pkg/util/flushwriter: every Write, even an
// empty one, goes to the ResponseWriter and is flushed.
type flushWriter struct{ w http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		return n, err
	}
	f.w.(http.Flusher).Flush()
	return n, nil
}
