// Package deploy checks how confide is shipped and run: the container image (the Dockerfile
// at the repository's root), the Helm chart in helm/confide and the Grafana dashboard in
// grafana/confide.json. It holds no code of its own; its tests are the checks.
//
// The chart's tests render it with Helm (helm.sh/helm/v4, built with `go install`, so neither
// Helm nor the Kubernetes client libraries enter the confide binary's dependencies) and
// decode every rendered object strictly into the k8s.io/api types: an unknown or duplicated
// field fails, as the API server would refuse it. They then check what makes the objects
// work together — the state volume at --state-dir, gRPC probes on the plaintext health
// port, Secrets at the TLS paths, the metrics port in the scrape annotations, a non-root
// restricted pod — and start the server with the pod's own command line against its
// rendered ConfigMap. `helm lint` runs on the default values and on each variant.
//
// Invariants of the chart these tests hold it to:
//   - one server pod (a StatefulSet of 1) whose state survives rescheduling (a claim
//     template mounted where --state-dir points);
//   - the kubelet's gRPC probes reach the health service without a client certificate
//     (--health-listen), the federation port keeps mutual TLS;
//   - every pod runs as a non-root user with a read-only root file system, no service
//     links (they would put CONFIDE_… variables, which confide reads as flags, into the
//     environment) and no service-account token;
//   - client i of a fleet reads client i's certificate, and --num-clients is the fleet's size.
package deploy
