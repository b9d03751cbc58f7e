package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
)

// TestServerPodRuns runs the server container of the default chart as the kubelet would,
// on this machine: its volumes laid out under a temporary root (the rendered ConfigMap, the
// TLS Secrets from 'confide ca', the state claim and emptyDirs as directories), its args with
// those paths and with loopback ports for its listen addresses. Then its probes pass (a
// plaintext gRPC health check on the probe's port, no client certificate), Prometheus's
// scrape of the annotated port and path finds the server's metrics, its state is on the
// claim, and every log line is one JSON object.
func TestServerPodRuns(t *testing.T) {
	m := render(t, nil)
	ss := m.statefulSets["fl-confide-server"]
	pod := ss.Spec.Template.Spec
	c := pod.Containers[0]
	bin := confide(t)
	root := t.TempDir()

	// The Secrets the values name, as 'confide ca' issues their contents.
	pki := filepath.Join(root, "pki")
	for _, args := range [][]string{{"ca", "init", "--dir", pki}, {"ca", "issue", "--dir", pki, "--server", "--name", "server", "--host", "127.0.0.1"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("confide %v: %v\n%s", args, err, out)
		}
	}
	secrets := map[string]map[string]string{
		"confide-server-tls": {"tls.crt": filepath.Join(pki, "server.crt"), "tls.key": filepath.Join(pki, "server.key")},
		"confide-ca":         {"ca.crt": filepath.Join(pki, "ca.crt")},
	}
	at := func(p string) string { return filepath.Join(root, "pod", p) }
	for _, mount := range c.VolumeMounts {
		dir := at(mount.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		v := volumeNamed(pod, mount.Name)
		switch {
		case v == nil: // the claim template
		case v.ConfigMap != nil:
			for key, val := range m.configMaps[v.ConfigMap.Name].Data {
				writeFile(t, filepath.Join(dir, key), []byte(val))
			}
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				src, ok := secrets[v.Secret.SecretName][it.Key]
				if !ok {
					t.Fatalf("Secret %s key %s: not one the test provides", v.Secret.SecretName, it.Key)
				}
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, it.Path), b)
			}
		case v.EmptyDir != nil:
		default:
			t.Fatalf("volume %s: a source the test does not lay out: %+v", v.Name, v.VolumeSource)
		}
	}

	// Listen addresses ":PORT" become free loopback ports; paths move under root.
	ports := map[int32]string{}
	var args []string
	for _, a := range c.Args {
		name, val, ok := strings.Cut(a, "=")
		if ok && strings.HasPrefix(val, ":") {
			p, err := strconv.Atoi(val[1:])
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			ports[int32(p)] = freeLoopback(t)
			a = name + "=" + ports[int32(p)]
		} else if ok && strings.HasPrefix(val, "/") {
			a = name + "=" + at(val)
		}
		args = append(args, a)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + root, "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer // written by cmd's copying goroutine until Wait returns
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// The kubelet's probes: plaintext gRPC health checks on the probe's port.
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		status, err := grpcHealth(t, ports[p.GRPC.Port], *p.GRPC.Service)
		if err != nil || status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s probe: %v %v, want SERVING", name, status, err)
		}
	}
	// Prometheus's scrape by the pod's annotations.
	ann := ss.Spec.Template.Annotations
	port, _ := strconv.Atoi(ann["prometheus.io/port"])
	resp, err := http.Get(fmt.Sprintf("%s://%s%s", ann["prometheus.io/scheme"], ports[int32(port)], ann["prometheus.io/path"]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, metric := range []string{"confide_connected_clients", "confide_round", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), "\n"+metric+" ") {
			t.Errorf("scrape %d lacks %s", resp.StatusCode, metric)
		}
	}
	// The kubelet stops the pod with SIGTERM; the state is on the claim's mount.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		exited = true
	case <-time.After(time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second):
		t.Fatalf("the server did not stop within the pod's grace period of %d s", *pod.TerminationGracePeriodSeconds)
	}
	claim := ss.Spec.VolumeClaimTemplates[0].Name
	for _, mount := range c.VolumeMounts {
		if mount.Name == claim {
			if _, err := os.Stat(filepath.Join(at(mount.MountPath), "state.db")); err != nil {
				t.Errorf("no state.db on the state claim: %v", err)
			}
		}
	}
	records, bad := jsonLines(&stderr)
	for _, line := range bad {
		t.Errorf("log line is not a JSON object: %q", line)
	}
	listening := false
	for _, r := range records {
		listening = listening || r["msg"] == "server listening"
	}
	if !listening {
		t.Errorf("no JSON record \"server listening\" among %d log records", len(records))
	}
}

// jsonLines reads r to its end and decodes each line as one JSON object; bad are the lines
// that are not (the chart's logging.format is json).
func jsonLines(r io.Reader) (records []map[string]any, bad []string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			bad = append(bad, sc.Text())
			continue
		}
		records = append(records, rec)
	}
	return records, bad
}

// grpcHealth asks the plaintext gRPC health service at addr about service, waiting up to
// the time the startup probe allows for the server to listen.
func grpcHealth(t *testing.T, addr, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
	if err != nil {
		return 0, err
	}
	return r.Status, nil
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
