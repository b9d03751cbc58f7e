package deploy

import (
	"fmt"
	"maps"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/confide-fl/confide/server"
)

// The health service the probes ask about: the federation's, as server.NewGRPCServer
// registers it.
const federationHealthService = "confide.v1.Federation"

// dataVolume is a volume source for the data sets in the variants below.
var dataVolume = map[string]any{"persistentVolumeClaim": map[string]any{"claimName": "mnist", "readOnly": true}}

// chartVariants are the values the chart is rendered, checked and linted with.
var chartVariants = []struct {
	name   string
	values map[string]any
}{
	{"defaults", nil},
	{"fleet_shared_certificates", map[string]any{
		"server": map[string]any{"data": map[string]any{"volume": dataVolume},
			"joinToken": map[string]any{"secretName": "fl-join", "key": "token"},
			"config":    map[string]any{"evaluation": map[string]any{"dataset": "mnist"}}},
		"clients": map[string]any{"enabled": true, "count": 3, "data": map[string]any{"volume": dataVolume},
			"joinToken": map[string]any{"secretName": "fl-join", "key": "token"}, "extraArgs": []string{"--min-noise-multiplier", "0.6"}},
	}},
	{"fleet_per_client_certificates", map[string]any{
		"clients": map[string]any{"enabled": true, "count": 2, "data": map[string]any{"volume": dataVolume},
			"certificates": map[string]any{"mode": "perClient", "secretName": "fl-client"},
			"state":        map[string]any{"existingClaim": "client-ledgers"}, "privacy": map[string]any{"noDP": true}},
	}},
	{"plaintext", map[string]any{
		"server":  map[string]any{"tls": map[string]any{"enabled": false}, "checkpoints": false},
		"clients": map[string]any{"enabled": true, "insecure": true, "data": map[string]any{"volume": dataVolume}},
		"logging": map[string]any{"format": "text", "level": "debug"},
	}},
	{"clients_only", map[string]any{
		"server":  map[string]any{"enabled": false},
		"clients": map[string]any{"enabled": true, "count": 1, "server": "fl.example.org:7070", "data": map[string]any{"volume": dataVolume}},
	}},
}

// TestChartRendersStrictlyValidObjects renders every variant, decodes each object strictly
// into its k8s.io/api type and checks the invariants of package deploy's documentation.
func TestChartRendersStrictlyValidObjects(t *testing.T) {
	for _, v := range chartVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, v.values)
			serverOn := lookup(v.values, "server.enabled") != false
			clientsOn := lookup(v.values, "clients.enabled") == true
			if got := len(m.statefulSets); (got == 1) != serverOn {
				t.Fatalf("%d StatefulSets with server.enabled %v", got, serverOn)
			}
			if serverOn {
				checkServer(t, m, v.values)
			}
			if clientsOn {
				checkClients(t, m, v.values)
			} else if len(m.jobs) > 0 {
				t.Fatalf("client Jobs %v without clients.enabled", slices.Collect(maps.Keys(m.jobs)))
			}
		})
	}
}

func checkServer(t *testing.T, m *manifests, values map[string]any) {
	t.Helper()
	ss := m.statefulSets["fl-confide-server"]
	if ss == nil {
		t.Fatalf("no StatefulSet fl-confide-server among %v", slices.Collect(maps.Keys(m.statefulSets)))
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("server replicas %v, want 1 (a federation has one coordinator)", ss.Spec.Replicas)
	}
	pod := ss.Spec.Template.Spec
	checkPodHardening(t, "server", pod)
	c := onlyContainer(t, "server", pod)
	flags := commandFlags(t, c.Args, "server")

	// The state: a claim template mounted where --state-dir points.
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%d volume claim templates, want one (the state)", len(ss.Spec.VolumeClaimTemplates))
	}
	claim := ss.Spec.VolumeClaimTemplates[0]
	if mount := mountAt(c, flags["state-dir"]); mount == nil || mount.Name != claim.Name || mount.ReadOnly {
		t.Errorf("--state-dir %s is not the writable mount of claim template %q (mounts %v)", flags["state-dir"], claim.Name, c.VolumeMounts)
	}
	if q := claim.Spec.Resources.Requests[corev1.ResourceStorage]; q.IsZero() {
		t.Errorf("state claim requests no storage")
	}
	if cp, ok := flags["checkpoint-dir"]; ok && !strings.HasPrefix(cp, flags["state-dir"]+"/") {
		t.Errorf("--checkpoint-dir %s is not on the state volume %s", cp, flags["state-dir"])
	}
	if _, ok := flags["checkpoint-dir"]; ok != (lookup(values, "server.checkpoints") != false) {
		t.Errorf("--checkpoint-dir set %v with server.checkpoints %v", ok, lookup(values, "server.checkpoints"))
	}

	// The headless Service governs the StatefulSet; the Service exposes gRPC and metrics.
	if hs := m.services[ss.Spec.ServiceName]; hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q is not a headless Service of the chart", ss.Spec.ServiceName)
	}
	svc := m.services["fl-confide-server"]
	if svc == nil {
		t.Fatal("no Service fl-confide-server")
	}
	for k, want := range svc.Spec.Selector {
		if ss.Spec.Template.Labels[k] != want || ss.Spec.Selector.MatchLabels[k] != want {
			t.Errorf("Service selector %s=%s does not select the server pods %v", k, want, ss.Spec.Template.Labels)
		}
	}
	for _, p := range svc.Spec.Ports {
		if containerPort(c, p.TargetPort.String()) == 0 {
			t.Errorf("Service port %s targets %q, not a port of the server container", p.Name, p.TargetPort.String())
		}
	}
	grpcPort := containerPort(c, "grpc")
	if listenPort(t, flags["listen"]) != grpcPort {
		t.Errorf("--listen %s is not the grpc container port %d", flags["listen"], grpcPort)
	}

	// Probes: gRPC health checks on the plaintext health port (--health-listen).
	health := listenPort(t, flags["health-listen"])
	if health == 0 || health != containerPort(c, "health") {
		t.Errorf("--health-listen %q is not the container port named health", flags["health-listen"])
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		switch {
		case p == nil:
			t.Errorf("no %s probe", name)
		case p.GRPC == nil || p.HTTPGet != nil || p.TCPSocket != nil || p.Exec != nil:
			t.Errorf("%s probe %+v is not a gRPC probe", name, p.ProbeHandler)
		case p.GRPC.Port != health:
			t.Errorf("%s probe on port %d, not the health port %d (the federation port needs a client certificate)", name, p.GRPC.Port, health)
		case p.GRPC.Service == nil || *p.GRPC.Service != federationHealthService:
			t.Errorf("%s probe asks about service %v, want %s", name, p.GRPC.Service, federationHealthService)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == "health" || p.Port == health {
			t.Errorf("the Service exposes the plaintext health port (%s)", p.Name)
		}
	}

	// Prometheus scrapes the metrics listener.
	ann := ss.Spec.Template.Annotations
	metrics := listenPort(t, flags["metrics-listen"])
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(metrics)) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %d (--metrics-listen), path /metrics", ann, metrics)
	}
	if metrics != containerPort(c, "metrics") {
		t.Errorf("--metrics-listen port %d is not the container port named metrics", metrics)
	}

	// The config file comes from the chart's ConfigMap, and its federation is valid.
	vol := volumeAt(t, pod, c, flags["config"])
	if vol.ConfigMap == nil {
		t.Fatalf("--config %s is not on a ConfigMap volume", flags["config"])
	}
	cm := m.configMaps[vol.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("--config from ConfigMap %q, which the chart does not render", vol.ConfigMap.Name)
	}
	file, ok := cm.Data[path.Base(flags["config"])]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, path.Base(flags["config"]))
	}
	checkServerConfig(t, file, pod, c)

	// TLS material from the Secrets the values name, or --insecure.
	if lookup(values, "server.tls.enabled") == false {
		if flags["insecure"] != "true" {
			t.Errorf("server.tls.enabled false without --insecure")
		}
		for _, f := range []string{"tls-cert", "tls-key", "client-ca"} {
			if _, ok := flags[f]; ok {
				t.Errorf("--%s with TLS off", f)
			}
		}
	} else {
		for f, want := range map[string][2]string{"tls-cert": {"confide-server-tls", "tls.crt"}, "tls-key": {"confide-server-tls", "tls.key"}, "client-ca": {"confide-ca", "ca.crt"}} {
			checkSecretFile(t, pod, c, flags[f], want[0], want[1])
		}
	}
	if name := lookup(values, "server.joinToken.secretName"); name != nil {
		checkEnvFromSecret(t, c, "CONFIDE_JOIN_TOKEN", name.(string))
	}
	if lookup(values, "server.data.volume") != nil {
		if mount := mountAt(c, "/data"); mount == nil || !mount.ReadOnly {
			t.Errorf("evaluation data volume not mounted read-only at /data")
		}
	}
}

// checkServerConfig decodes the rendered server YAML: its federation section must be one
// the server accepts (server.New validates it), and a data volume must be the evaluation's
// data_dir.
func checkServerConfig(t *testing.T, file string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	var sf struct {
		Federation server.Config `yaml:"federation"`
		Evaluation struct {
			Dataset string `yaml:"dataset"`
			DataDir string `yaml:"data_dir"`
		} `yaml:"evaluation"`
		Rest map[string]any `yaml:",inline"`
	}
	dec := yaml.NewDecoder(strings.NewReader(file))
	dec.KnownFields(true)
	if err := dec.Decode(&sf); err != nil {
		t.Fatalf("server.yaml: %v\n%s", err, file)
	}
	if _, err := server.New(sf.Federation, server.Options{}); err != nil {
		t.Errorf("server.yaml's federation: %v", err)
	}
	if sf.Evaluation.DataDir != "" {
		if m := mountAt(c, sf.Evaluation.DataDir); m == nil {
			t.Errorf("evaluation.data_dir %s is not a mount", sf.Evaluation.DataDir)
		}
	}
}

func checkClients(t *testing.T, m *manifests, values map[string]any) {
	t.Helper()
	count := 6 // values.yaml
	if n, ok := lookup(values, "clients.count").(int); ok {
		count = n
	}
	perClient := lookup(values, "clients.certificates.mode") == "perClient"
	if want := 1; perClient {
		want = count
		if len(m.jobs) != want {
			t.Fatalf("%d Jobs, want one per client (%d)", len(m.jobs), want)
		}
	} else if len(m.jobs) != want {
		t.Fatalf("%d Jobs, want one indexed Job", len(m.jobs))
	}
	for name, job := range m.jobs {
		pod := job.Spec.Template.Spec
		checkPodHardening(t, name, pod)
		if pod.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("%s: restartPolicy %s, want OnFailure (a restarted container keeps its state emptyDir)", name, pod.RestartPolicy)
		}
		c := onlyContainer(t, name, pod)
		flags := commandFlags(t, c.Args, "client")
		index := clientIndex(t, name, job, c, perClient)
		if flags["client-index"] != "$(CONFIDE_CLIENT_INDEX)" || flags["num-clients"] != strconv.Itoa(count) {
			t.Errorf("%s: --client-index %s of --num-clients %s, want $(CONFIDE_CLIENT_INDEX) of %d", name, flags["client-index"], flags["num-clients"], count)
		}
		if want := lookup(values, "clients.server"); want != nil && flags["server"] != want {
			t.Errorf("%s: --server %s, want clients.server %s", name, flags["server"], want)
		} else if want == nil {
			port := m.statefulSets["fl-confide-server"].Spec.Template.Spec.Containers[0].Ports[0].ContainerPort
			if flags["server"] != fmt.Sprintf("fl-confide-server:%d", port) {
				t.Errorf("%s: --server %s, want this release's Service fl-confide-server:%d", name, flags["server"], port)
			}
		}
		// Every $(VAR) in the args is a variable of the container: Kubernetes leaves an
		// unknown reference as it is.
		for _, a := range c.Args {
			for _, ref := range varRef.FindAllStringSubmatch(a, -1) {
				if envVar(c, ref[1]) == nil {
					t.Errorf("%s: %q refers to $(%s), which the container does not define", name, a, ref[1])
				}
			}
		}
		if mount := mountAt(c, "/data"); mount == nil || !mount.ReadOnly || flags["data-dir"] != "/data" {
			t.Errorf("%s: the data volume is not read-only at --data-dir %s", name, flags["data-dir"])
		}
		if mount := mountAt(c, flags["state-dir"]); mount == nil || mount.ReadOnly {
			t.Errorf("%s: --state-dir %s is not a writable mount", name, flags["state-dir"])
		} else if claim := lookup(values, "clients.state.existingClaim"); claim != nil {
			v := volumeNamed(pod, mount.Name)
			if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claim || mount.SubPathExpr != "client-$(CONFIDE_CLIENT_INDEX)" {
				t.Errorf("%s: state on %+v subPathExpr %q, want claim %s under client-$(CONFIDE_CLIENT_INDEX)", name, v.VolumeSource, mount.SubPathExpr, claim)
			}
		}
		if lookup(values, "clients.privacy.noDP") == true {
			if flags["no-dp"] != "true" || flags["epsilon"] != "" {
				t.Errorf("%s: privacy.noDP without --no-dp alone: %v", name, flags)
			}
		} else if flags["epsilon"] == "" || flags["delta"] == "" {
			t.Errorf("%s: no privacy budget (--epsilon, --delta)", name)
		}
		if name := lookup(values, "clients.joinToken.secretName"); name != nil {
			checkEnvFromSecret(t, c, "CONFIDE_JOIN_TOKEN", name.(string))
		}
		switch {
		case lookup(values, "clients.insecure") == true:
			if flags["insecure"] != "true" || flags["tls-cert"] != "" {
				t.Errorf("%s: clients.insecure without --insecure alone", name)
			}
		case perClient:
			secret := fmt.Sprintf("fl-client-%s", index)
			checkSecretFile(t, pod, c, flags["tls-cert"], secret, "tls.crt")
			checkSecretFile(t, pod, c, flags["tls-key"], secret, "tls.key")
			checkSecretFile(t, pod, c, flags["ca"], secret, "ca.crt")
		default:
			checkSecretFile(t, pod, c, strings.ReplaceAll(flags["tls-cert"], "$(CONFIDE_CLIENT_INDEX)", "2"), "confide-clients", "client-2.crt")
			checkSecretFile(t, pod, c, strings.ReplaceAll(flags["tls-key"], "$(CONFIDE_CLIENT_INDEX)", "2"), "confide-clients", "client-2.key")
			checkSecretFile(t, pod, c, flags["ca"], "confide-clients", "ca.crt")
		}
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// clientIndex checks where CONFIDE_CLIENT_INDEX comes from (the completion index of an
// indexed Job of completions = parallelism = count, or a literal per Job) and returns it
// ("" for the indexed Job).
func clientIndex(t *testing.T, name string, job *batchv1.Job, c corev1.Container, perClient bool) string {
	t.Helper()
	e := envVar(c, "CONFIDE_CLIENT_INDEX")
	if e == nil {
		t.Fatalf("%s: no CONFIDE_CLIENT_INDEX", name)
	}
	if perClient {
		want := strings.TrimPrefix(name, "fl-confide-client-")
		if e.Value != want || job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
			t.Errorf("%s: CONFIDE_CLIENT_INDEX %q, want %s in a Job of its own", name, e.Value, want)
		}
		return e.Value
	}
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion ||
		job.Spec.Completions == nil || job.Spec.Parallelism == nil || *job.Spec.Completions != *job.Spec.Parallelism {
		t.Errorf("%s: not an indexed Job running all its completions at once", name)
	}
	if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("%s: CONFIDE_CLIENT_INDEX is not the Job's completion index: %+v", name, e)
	}
	return ""
}

// checkPodHardening: a non-root user, no privilege escalation or capabilities, a read-only
// root file system, no service links and no service-account token.
func checkPodHardening(t *testing.T, name string, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod not forced to a non-root user: %+v", name, psc)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("%s: service links on (their CONFIDE_… variables would be read as flags)", name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service-account token it does not use", name)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: container security %+v, want no escalation, read-only root, capabilities dropped", name, c.Name, sc)
		}
		if m := mountAt(c, "/tmp"); m == nil {
			t.Errorf("%s/%s: no writable /tmp under a read-only root", name, c.Name)
		}
		for _, m := range c.VolumeMounts {
			if volumeNamed(pod, m.Name) == nil && m.Name != "state" {
				t.Errorf("%s/%s: mount %s of an undeclared volume", name, c.Name, m.Name)
			}
		}
	}
}

func onlyContainer(t *testing.T, name string, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(pod.Containers))
	}
	return pod.Containers[0]
}

// commandFlags checks that args are confide's subcommand followed by --flag=value or --flag
// arguments naming flags the subcommand has (from its --help), and returns them.
func commandFlags(t *testing.T, args []string, subcommand string) map[string]string {
	t.Helper()
	if len(args) == 0 || args[0] != subcommand {
		t.Fatalf("args %v do not start with %q", args, subcommand)
	}
	known := helpFlags(t, subcommand)
	flags := map[string]string{}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q is not a --flag", a)
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !hasVal {
			val = "true"
			if i+1 < len(rest) && !strings.HasPrefix(rest[i+1], "--") { // --flag value (extraArgs)
				val = rest[i+1]
				i++
			}
		}
		if !known[name] {
			t.Errorf("confide %s has no flag --%s", subcommand, name)
		}
		if _, dup := flags[name]; dup {
			t.Errorf("--%s given twice", name)
		}
		flags[name] = val
	}
	return flags
}

var helpFlagPattern = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)

// helpFlags are the flags `confide SUBCOMMAND --help` lists.
func helpFlags(t *testing.T, subcommand string) map[string]bool {
	t.Helper()
	out, err := exec.Command(confide(t), subcommand, "--help").Output()
	if err != nil {
		t.Fatalf("confide %s --help: %v", subcommand, err)
	}
	_, section, _ := strings.Cut(string(out), "\nFlags:\n")
	known := map[string]bool{}
	for _, m := range helpFlagPattern.FindAllStringSubmatch(section, -1) {
		known[m[1]] = true
	}
	return known
}

// mountAt is the container's volume mount whose path is dir or holds it.
func mountAt(c corev1.Container, dir string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (dir == m.MountPath || strings.HasPrefix(dir, m.MountPath+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func volumeNamed(pod corev1.PodSpec, name string) *corev1.Volume {
	for i, v := range pod.Volumes {
		if v.Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

// volumeAt is the volume mounted where file lies.
func volumeAt(t *testing.T, pod corev1.PodSpec, c corev1.Container, file string) *corev1.Volume {
	t.Helper()
	m := mountAt(c, file)
	if m == nil {
		t.Fatalf("%s is on no volume of %s", file, c.Name)
	}
	v := volumeNamed(pod, m.Name)
	if v == nil {
		t.Fatalf("%s: volume %s is not declared", file, m.Name)
	}
	return v
}

// checkSecretFile checks that file is key of Secret secret, as mounted in the container.
func checkSecretFile(t *testing.T, pod corev1.PodSpec, c corev1.Container, file, secret, key string) {
	t.Helper()
	if file == "" {
		t.Errorf("no file for %s of Secret %s", key, secret)
		return
	}
	m := mountAt(c, file)
	v := volumeAt(t, pod, c, file)
	if v.Secret == nil || v.Secret.SecretName != secret || !m.ReadOnly {
		t.Errorf("%s is not on a read-only mount of Secret %s (%+v)", file, secret, v.VolumeSource)
		return
	}
	rel := strings.TrimPrefix(file, m.MountPath+"/")
	if len(v.Secret.Items) == 0 {
		if rel != key {
			t.Errorf("%s is key %s of Secret %s, want %s", file, rel, secret, key)
		}
		return
	}
	for _, it := range v.Secret.Items {
		if it.Path == rel {
			if it.Key != key {
				t.Errorf("%s is key %s of Secret %s, want %s", file, it.Key, secret, key)
			}
			return
		}
	}
	t.Errorf("%s is not among the items of Secret %s", file, secret)
}

func checkEnvFromSecret(t *testing.T, c corev1.Container, name, secret string) {
	t.Helper()
	e := envVar(c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != secret {
		t.Errorf("%s: %s is not taken from Secret %s: %+v", c.Name, name, secret, e)
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i, e := range c.Env {
		if e.Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// listenPort is the port of a listen address such as ":7070".
func listenPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, ok := strings.Cut(addr, ":")
	n, err := strconv.Atoi(port)
	if !ok || err != nil {
		t.Errorf("listen address %q has no port", addr)
	}
	return int32(n)
}

// lookup is the value at a dotted path of nested maps, nil where there is none.
func lookup(values map[string]any, dotted string) any {
	var cur any = values
	for _, k := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}
