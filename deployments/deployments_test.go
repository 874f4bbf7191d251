package deployments

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otpgate/otpgate/internal/config"
)

// The files under test, relative to this directory.
const (
	unitFile       = "systemd/otpgate.service"
	envExampleFile = "systemd/otpgate.env.example"
	dockerfile     = "Dockerfile"
	composeFile    = "compose.yaml"
	kubeDir        = "kubernetes"

	shippedExecStart = "/usr/local/bin/otpgate serve"
	// placeholder marks a value the operator must replace; otpgate must
	// refuse every one of them.
	placeholder = "REPLACE"
)

// ---------------------------------------------------------------------------
// systemd

// systemdAnalyze returns the path of systemd-analyze. Without it the test
// skips, except in CI (CI=true), where .ci/run installs it and its absence
// is a failure.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("systemd-analyze not found, and CI=true: .ci/run must install systemd (%v)", err)
	}
	t.Skipf("systemd-analyze not found (%v): install systemd (apt-get install systemd) to verify %s; with CI=true this fails", err, unitFile)
	return ""
}

// testableUnit writes the shipped unit into a temporary directory with only
// ExecStart's binary replaced by true(1), which systemd-analyze can find
// (it checks that the binary exists). It returns the copy's path.
func testableUnit(t *testing.T, extra string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("no true(1) to stand in for otpgate: %v", err)
	}
	var out []string
	replaced := 0
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			if v != shippedExecStart {
				t.Fatalf("%s: ExecStart=%s, want ExecStart=%s", unitFile, v, shippedExecStart)
			}
			line = "ExecStart=" + trueBin + " serve"
			replaced++
		}
		out = append(out, line)
	}
	if replaced != 1 {
		t.Fatalf("%s: %d ExecStart= lines, want 1", unitFile, replaced)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(unitFile))
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyUnit runs systemd-analyze verify and returns the output lines that
// concern the unit (systemd prefixes them with the unit's path or name).
func verifyUnit(t *testing.T, analyze, path string) []string {
	t.Helper()
	cmd := exec.Command(analyze, "verify", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=info", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	var about []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, path) || strings.Contains(line, filepath.Base(path)):
			about = append(about, line)
		default:
			t.Logf("systemd-analyze (other units): %s", line)
		}
	}
	return about
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, line := range verifyUnit(t, analyze, testableUnit(t, "")) {
		t.Errorf("systemd-analyze verify: %s", line)
	}
	// The check above passes on silence; make sure silence means a clean
	// unit and not a systemd-analyze that reports nothing.
	t.Run("detects a bad directive", func(t *testing.T) {
		if lines := verifyUnit(t, analyze, testableUnit(t, "\n[Service]\nProtectHome=perhaps\n")); len(lines) == 0 {
			t.Error("systemd-analyze verify reported nothing about ProtectHome=perhaps: the check cannot see warnings")
		}
	})
}

func TestSystemdUnitSecurity(t *testing.T) {
	analyze := systemdAnalyze(t)
	path := testableUnit(t, "")
	// Exposure is 0.0 (locked down) to 10.0; the threshold is in tenths.
	// 2.0 is the top of systemd's "OK" band; the unit scores about 1.4.
	cmd := exec.Command(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("unrecognized option")) {
		t.Skipf("this systemd-analyze cannot rate a unit file offline (systemd < 250): %s", bytes.TrimSpace(out))
	}
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 or failure: %v\n%s", err, out)
	}
}

// unitEntries parses a systemd unit into
// section → key → values (in order; repeated keys accumulate).
func unitEntries(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not key=value: %q", path, i+1, line)
		}
		if out[section] == nil {
			out[section] = map[string][]string{}
		}
		out[section][k] = append(out[section][k], v)
	}
	return out
}

func TestSystemdUnitSettings(t *testing.T) {
	svc := unitEntries(t, unitFile)["Service"]
	want := map[string]string{
		"ExecStart":               shippedExecStart,
		"User":                    "otpgate",
		"StateDirectory":          "otpgate",
		"EnvironmentFile":         "/etc/otpgate/otpgate.env",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"CapabilityBoundingSet":   "",
		"UMask":                   "0077",
		"Restart":                 "on-failure",
		"TimeoutStopSec":          "30",
	}
	for k, v := range want {
		got, ok := svc[k]
		if !ok || got[len(got)-1] != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Errorf("[Service] SystemCallFilter=%q, want @system-service among them", svc["SystemCallFilter"])
	}
	env := unitEnvironment(t, "/run/credentials/otpgate.service")
	if got := env["OTPGATE_DATA_DIR"]; got != "/var/lib/otpgate" {
		t.Errorf("OTPGATE_DATA_DIR=%q, want /var/lib/otpgate (the StateDirectory)", got)
	}
}

// unitEnvironment is the unit's Environment= with %d expanded to credDir.
func unitEnvironment(t *testing.T, credDir string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range unitEntries(t, unitFile)["Service"]["Environment"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%s: Environment=%s is not NAME=value", unitFile, kv)
		}
		env[k] = strings.ReplaceAll(v, "%d", credDir)
	}
	return env
}

// ---------------------------------------------------------------------------
// YAML

// yamlFiles lists every YAML file under deployments/.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// yamlDocs decodes every document of a (multi-document) YAML file.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			t.Fatalf("%s: document %d is not a mapping", path, len(docs)+1)
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

func TestYAMLParses(t *testing.T) {
	files := yamlFiles(t)
	for _, want := range []string{composeFile, filepath.Join(kubeDir, "statefulset.yaml"), filepath.Join(kubeDir, "kustomization.yaml")} {
		if !slices.Contains(files, want) {
			t.Errorf("%s missing (found %q)", want, files)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) { yamlDocs(t, f) })
	}
}

// Just enough of the Kubernetes API to check the manifests.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`       // ConfigMap
		StringData map[string]string `yaml:"stringData"` // Secret
		Spec       yaml.Node         `yaml:"spec"`
		Resources  []string          `yaml:"resources"` // Kustomization
		Images     []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"` // Kustomization
	}
	statefulSetSpec struct {
		Replicas    *int   `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	}
	podSpec struct {
		AutomountServiceAccountToken *bool              `yaml:"automountServiceAccountToken"`
		SecurityContext              podSecurityContext `yaml:"securityContext"`
		InitContainers               []container        `yaml:"initContainers"`
		Containers                   []container        `yaml:"containers"`
		Volumes                      []volume           `yaml:"volumes"`
		TopologySpreadConstraints    []topologySpread   `yaml:"topologySpreadConstraints"`
	}
	topologySpread struct {
		MaxSkew           int    `yaml:"maxSkew"`
		TopologyKey       string `yaml:"topologyKey"`
		WhenUnsatisfiable string `yaml:"whenUnsatisfiable"`
		LabelSelector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"labelSelector"`
	}
	podSecurityContext struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}
	container struct {
		Name    string `yaml:"name"`
		Image   string `yaml:"image"`
		Args    []string
		EnvFrom []struct {
			ConfigMapRef *struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name      string     `yaml:"name"`
			Value     *string    `yaml:"value"`
			ValueFrom *yaml.Node `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		StartupProbe   *probe `yaml:"startupProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"` // a number or a port name
		} `yaml:"httpGet"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	}
	serviceSpec struct {
		ClusterIP string            `yaml:"clusterIP"`
		Type      string            `yaml:"type"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	}
)

// manifests decodes every object of the embedded mode (kubernetes/).
func manifests(t *testing.T) (map[string]object, map[string]string) {
	t.Helper()
	return manifestsIn(t, kubeDir)
}

// manifestsIn decodes every object in one kustomization directory, keyed
// "Kind/name", and notes the file each came from.
func manifestsIn(t *testing.T, dir string) (map[string]object, map[string]string) {
	t.Helper()
	objs, from := map[string]object{}, map[string]string{}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			var o object
			if err := doc.Decode(&o); err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			if o.Kind == "" || o.APIVersion == "" {
				t.Fatalf("%s: document %d has no kind or apiVersion", f, i+1)
			}
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := objs[key]; dup {
				t.Fatalf("%s: %s defined twice", f, key)
			}
			objs[key], from[key] = o, filepath.Base(f)
		}
	}
	return objs, from
}

func mustGet(t *testing.T, objs map[string]object, key string) object {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		keys := make([]string, 0, len(objs))
		for k := range objs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("no %s among %q", key, keys)
	}
	return o
}

func decodeSpec(t *testing.T, o object, into any) {
	t.Helper()
	if err := o.Spec.Decode(into); err != nil {
		t.Fatalf("%s/%s spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// checkHardened checks a pod's and its containers' security settings.
func checkHardened(t *testing.T, name string, ps podSpec) {
	t.Helper()
	if !isFalse(ps.AutomountServiceAccountToken) {
		t.Errorf("%s: automountServiceAccountToken must be false: otpgate never calls the Kubernetes API", name)
	}
	sc := ps.SecurityContext
	if !isTrue(sc.RunAsNonRoot) {
		t.Errorf("%s: pod securityContext.runAsNonRoot must be true", name)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext.runAsUser must be a non-zero uid (the image's is 65532)", name)
	}
	if sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile %q, want RuntimeDefault", name, sc.SeccompProfile.Type)
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		cs := c.SecurityContext
		if !isTrue(cs.ReadOnlyRootFilesystem) {
			t.Errorf("%s/%s: readOnlyRootFilesystem must be true", name, c.Name)
		}
		if !isFalse(cs.AllowPrivilegeEscalation) {
			t.Errorf("%s/%s: allowPrivilegeEscalation must be false", name, c.Name)
		}
		if !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
			t.Errorf("%s/%s: capabilities drop %q add %q, want drop [ALL] and no add", name, c.Name, cs.Capabilities.Drop, cs.Capabilities.Add)
		}
		if cs.RunAsNonRoot != nil && !*cs.RunAsNonRoot {
			t.Errorf("%s/%s: runAsNonRoot overridden to false", name, c.Name)
		}
	}
}

func TestKubernetes(t *testing.T) {
	objs, from := manifests(t)

	sts := mustGet(t, objs, "StatefulSet/otpgate")
	var ss statefulSetSpec
	decodeSpec(t, sts, &ss)
	if ss.Replicas == nil || *ss.Replicas != 1 {
		got := "unset"
		if ss.Replicas != nil {
			got = strconv.Itoa(*ss.Replicas)
		}
		t.Errorf("StatefulSet replicas %s, want exactly 1: long polling allows one process per bot token", got)
	}
	for k, v := range ss.Selector.MatchLabels {
		if ss.Template.Metadata.Labels[k] != v {
			t.Errorf("StatefulSet selector %s=%s does not match the pod template's labels %v", k, v, ss.Template.Metadata.Labels)
		}
	}
	pod := ss.Template.Spec
	checkHardened(t, "StatefulSet", pod)
	if len(pod.Containers) != 1 {
		t.Fatalf("StatefulSet: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("container args %q, want [serve]", c.Args)
	}

	opsPort := checkServeContainer(t, c)

	// The data volume.
	mounts := map[string]string{} // mount path → volume name
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if len(ss.VolumeClaimTemplates) != 1 || mounts["/data"] != ss.VolumeClaimTemplates[0].Metadata.Name {
		t.Errorf("/data must be the volumeClaimTemplate's volume; mounts %v, templates %+v", mounts, ss.VolumeClaimTemplates)
	}

	checkConfigMap(t, objs, c, opsPort)
	checkOpsService(t, objs, ss.ServiceName, ss.Template.Metadata.Labels, opsPort)
	checkExampleSecret(t, objs, from)
	checkKustomization(t, objs, from)

	// Every pod (the bot and the import example) is hardened.
	for key, o := range objs {
		if o.Kind == "Pod" {
			var ps podSpec
			decodeSpec(t, o, &ps)
			checkHardened(t, key, ps)
		}
	}
}

// checkServeContainer checks the probes (on the port named ops) and the
// resources of an `otpgate serve` container, and returns the ops port.
func checkServeContainer(t *testing.T, c container) int {
	t.Helper()
	opsPort := containerPort(c, "ops")
	if opsPort == 0 {
		t.Fatalf("container has no port named ops: %+v", c.Ports)
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"startupProbe", c.StartupProbe, "/healthz"},
	} {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			t.Errorf("%s: want an httpGet probe on %s", pr.name, pr.path)
		case pr.p.HTTPGet.Path != pr.path:
			t.Errorf("%s: path %s, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		case pr.p.HTTPGet.Port != "ops" && pr.p.HTTPGet.Port != opsPort:
			t.Errorf("%s: port %v, want ops (%d)", pr.name, pr.p.HTTPGet.Port, opsPort)
		}
	}
	for _, r := range []struct{ kind, name, value string }{
		{"requests", "memory", c.Resources.Requests["memory"]},
		{"limits", "memory", c.Resources.Limits["memory"]},
		{"requests", "cpu", c.Resources.Requests["cpu"]},
	} {
		if r.value == "" {
			t.Errorf("resources.%s.%s not set", r.kind, r.name)
		}
	}
	return opsPort
}

// containerPort is the number of the container's port called name, or 0.
func containerPort(c container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// configMapOf is the ConfigMap the container loads with envFrom.
func configMapOf(t *testing.T, objs map[string]object, c container) object {
	t.Helper()
	var cmName string
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			cmName = ef.ConfigMapRef.Name
		}
	}
	return mustGet(t, objs, "ConfigMap/"+cmName)
}

// checkConfigMap: the ConfigMap the container loads names the ops port and
// no secret; the container's env sets no secret as a value either.
func checkConfigMap(t *testing.T, objs map[string]object, c container, opsPort int) {
	t.Helper()
	cm := configMapOf(t, objs, c)
	if _, port, err := net.SplitHostPort(cm.Data["OTPGATE_OPS_LISTEN"]); err != nil || port != strconv.Itoa(opsPort) {
		t.Errorf("ConfigMap OTPGATE_OPS_LISTEN=%q, want the ops port %d", cm.Data["OTPGATE_OPS_LISTEN"], opsPort)
	}
	for k := range cm.Data {
		if isSecretVar(k) {
			t.Errorf("ConfigMap sets the secret %s: secrets belong in the Secret, as files", k)
		}
	}
	for _, e := range c.Env {
		if isSecretVar(e.Name) {
			t.Errorf("container env sets the secret %s as a value; use %s%s", e.Name, e.Name, config.FileSuffix)
		}
	}
}

// selects reports whether a selector is non-empty and matches labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// checkOpsService: the Service for Prometheus selects the pods, stays
// inside the cluster and targets the ops port.
func checkOpsService(t *testing.T, objs map[string]object, name string, podLabels map[string]string, opsPort int) {
	t.Helper()
	var sv serviceSpec
	decodeSpec(t, mustGet(t, objs, "Service/"+name), &sv)
	if !selects(sv.Selector, podLabels) {
		t.Errorf("Service %s selector %v does not select the pods (labels %v)", name, sv.Selector, podLabels)
	}
	if sv.Type == "LoadBalancer" || sv.Type == "NodePort" {
		t.Errorf("Service %s type %s exposes the unauthenticated ops port outside the cluster", name, sv.Type)
	}
	targeted := false
	for _, p := range sv.Ports {
		if p.TargetPort == "ops" || p.TargetPort == opsPort || (p.TargetPort == nil && p.Port == opsPort) {
			targeted = true
		}
	}
	if !targeted {
		t.Errorf("Service %s ports %+v do not reach the ops port %d", name, sv.Ports, opsPort)
	}
}

// checkExampleSecret: the example Secret is the only Secret, in
// secret.example.yaml, and holds only placeholders.
func checkExampleSecret(t *testing.T, objs map[string]object, from map[string]string) object {
	t.Helper()
	secret := mustGet(t, objs, "Secret/otpgate-secrets")
	for key, f := range from {
		if strings.HasPrefix(key, "Secret/") && f != "secret.example.yaml" {
			t.Errorf("%s comes from %s; only secret.example.yaml may hold a Secret", key, f)
		}
	}
	for k, v := range secret.StringData {
		if !strings.Contains(v, placeholder) {
			t.Errorf("secret.example.yaml: %s=%q is not marked %s", k, v, placeholder)
		}
	}
	return secret
}

// checkKustomization: the kustomization lists every manifest of its
// directory but the examples.
func checkKustomization(t *testing.T, objs map[string]object, from map[string]string) {
	t.Helper()
	kust := mustGet(t, objs, "Kustomization/")
	var want []string
	for _, f := range from {
		if !strings.Contains(f, ".example.") && f != "kustomization.yaml" && !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(kust.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %q, want %q (every manifest except *.example.yaml)", got, want)
	}
}

// ---------------------------------------------------------------------------
// Variables

var variables = config.Variables()

func variable(name string) (config.Variable, bool) {
	i := slices.IndexFunc(variables, func(v config.Variable) bool { return v.Name == name })
	if i < 0 {
		return config.Variable{}, false
	}
	return variables[i], true
}

// isSecretVar: a secret that must arrive as a file, never as a value.
func isSecretVar(name string) bool {
	v, ok := variable(name)
	return ok && v.Secret
}

var varName = regexp.MustCompile(`OTPGATE_[A-Z0-9_]*[A-Z0-9]`)

func TestVariablesAreReal(t *testing.T) {
	if len(variables) < 10 {
		t.Fatalf("config.Variables() lists %d variables", len(variables))
	}
	seen := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			for _, name := range varName.FindAllString(sc.Text(), -1) {
				seen++
				if _, ok := variable(name); !ok {
					t.Errorf("%s:%d: %s is not a variable otpgate reads (otpgate config lists them)", path, n, name)
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 20 {
		t.Errorf("found only %d OTPGATE_* references under deployments/: is the walk broken?", seen)
	}
}

// ---------------------------------------------------------------------------
// The environment each deployment assembles

// sampleWebhookURL stands in for the operator's webhook URL; its path is
// the one the shipped balancer forwards.
const sampleWebhookURL = "https://bot.example.org/telegram"

// sampleValues fill placeholders and operator-provided values with values
// of the right shape; sampleSecrets are the contents of the secret files.
var (
	sampleValues = map[string]string{
		"OTPGATE_TWILIO_ACCOUNT_SID":           "AC0123456789abcdef0123456789abcdef",
		"OTPGATE_TWILIO_MESSAGING_SERVICE_SID": "MG0123456789abcdef0123456789abcdef",
		"OTPGATE_WEBHOOK_URL":                  sampleWebhookURL,
	}
	sampleSecrets = map[string]string{
		"OTPGATE_MASTER_KEY":        strings.Repeat("5a", 32) + "\n",
		"OTPGATE_TELEGRAM_TOKEN":    "123456789:AAFakeTokenForDeploymentTests_0123\n",
		"OTPGATE_TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef\n",
		"OTPGATE_WEBHOOK_SECRET":    "fake-webhook-secret\n",
		"OTPGATE_DATABASE_URL":      "postgres://otpgate:fake-password@db.example.internal:5432/otpgate?sslmode=verify-full\n",
	}
	// Every deployment of serve hands these over as files.
	requiredFiles = []string{"OTPGATE_MASTER_KEY_FILE", "OTPGATE_TELEGRAM_TOKEN_FILE", "OTPGATE_TWILIO_AUTH_TOKEN_FILE"}
)

// deployment is what one way of running otpgate gives the process: its
// environment (in precedence order, first wins, as config.Load reads it)
// and, for each *_FILE variable, the content the file would hold as
// shipped ("" when the operator supplies it).
type deployment struct {
	env     []string
	shipped map[string]string // *_FILE variable → shipped file content
}

// materialise writes the secret files into dir, pointing each *_FILE
// variable at one, and fills placeholders and operator values when fill is
// set (otherwise placeholders stay, and secrets without shipped content
// get samples).
func (d deployment) materialise(t *testing.T, fill bool) []string {
	t.Helper()
	dir := t.TempDir()
	var env []string
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		if fv, ok := variable(k); ok && fv.FileFor != "" {
			content := sampleSecrets[fv.FileFor]
			if s := d.shipped[k]; s != "" && !fill {
				content = s
			}
			if content == "" {
				t.Fatalf("no sample secret for %s", fv.FileFor)
			}
			path := filepath.Join(dir, k)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			v = path
		} else if fill && strings.Contains(v, placeholder) {
			s, ok := sampleValues[k]
			if !ok {
				t.Fatalf("no sample value to replace the placeholder of %s", k)
			}
			v = s
		}
		env = append(env, k+"="+v)
	}
	return env
}

// check runs the assembled environment through otpgate's own configuration
// loader: it must be accepted for mode once placeholders are filled in, and
// refused, naming each placeholder's variable, before.
func (d deployment) check(t *testing.T, mode config.Mode) {
	t.Helper()
	names := map[string]bool{}
	for _, kv := range d.env {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, config.Prefix+"_") {
			continue
		}
		if isSecretVar(k) {
			t.Errorf("%s is set as a value; secrets must come from %s%s", k, k, config.FileSuffix)
		}
		names[k] = true
	}
	if mode == config.Serve {
		for _, f := range requiredFiles {
			if !names[f] {
				t.Errorf("%s not set", f)
			}
		}
	}

	env := d.materialise(t, true)
	cfg, err := config.Load(env)
	if err == nil {
		err = cfg.Require(mode)
	}
	if err != nil {
		t.Errorf("otpgate %s would refuse this environment once its placeholders are filled in:\n%v\nenvironment: %q", mode, err, env)
	}

	// As shipped: every placeholder must stop otpgate, naming its variable.
	var marked []string
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.Contains(v, placeholder) {
			marked = append(marked, k)
		}
	}
	for k, s := range d.shipped {
		if strings.Contains(s, placeholder) {
			marked = append(marked, k)
		}
	}
	if len(marked) == 0 {
		return
	}
	_, err = config.Load(d.materialise(t, false))
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("otpgate accepts the placeholders of %q as they are: %v", marked, err)
	}
	refused := errs.Vars()
	for _, k := range marked {
		base := k
		if v, ok := variable(k); ok && v.FileFor != "" {
			base = v.FileFor
		}
		if !slices.Contains(refused, k) && !slices.Contains(refused, base) {
			t.Errorf("the placeholder in %s is accepted by otpgate; it must be refused (refused: %q)", k, refused)
		}
	}
}

// dockerfileInstr is one Dockerfile instruction with continuations joined.
type dockerfileInstr struct {
	cmd, args string
	line      int
}

func parseDockerfile(t *testing.T) []dockerfileInstr {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerfileInstr
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerfileInstr{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	return out
}

// finalStage returns the instructions of the last stage, FROM included.
func finalStage(instrs []dockerfileInstr) []dockerfileInstr {
	last := 0
	for i, in := range instrs {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return instrs[last:]
}

// imageEnv is the ENV of the final stage, in the order Docker applies it.
func imageEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, in := range finalStage(parseDockerfile(t)) {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if !strings.Contains(kv, "=") {
				t.Fatalf("%s:%d: write ENV as NAME=value: %s", dockerfile, in.line, in.args)
			}
			env = append(env, kv)
		}
	}
	return env
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

func TestDockerfile(t *testing.T) {
	instrs := parseDockerfile(t)
	var froms []string
	for _, in := range instrs {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %q: want a multi-stage build", froms)
	}
	if !strings.Contains(froms[0], "golang:1.26") {
		t.Errorf("builder FROM %s, want golang:1.26", froms[0])
	}

	var build string
	for _, in := range instrs {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "./cmd/otpgate", "--mount=type=cache,target=/go/pkg/mod"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build step %q lacks %s", build, want)
		}
	}

	final := finalStage(instrs)
	base := strings.Fields(final[0].args)
	image := base[len(base)-1]
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i] // a pinned digest
	}
	nonrootBase := strings.HasSuffix(image, ":nonroot")
	user := ""
	var volumes, exposed []string
	var entrypoint, cmd string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "VOLUME":
			var vs []string
			if json.Unmarshal([]byte(in.args), &vs) != nil {
				vs = strings.Fields(in.args)
			}
			volumes = append(volumes, vs...)
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		case "HEALTHCHECK":
			t.Errorf("%s:%d: HEALTHCHECK cannot run in a distroless image (no shell)", dockerfile, in.line)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	switch {
	case user != "" && (uid == "0" || uid == "root"):
		t.Errorf("final stage USER %s is root", user)
	case user == "" && !nonrootBase:
		t.Errorf("final stage runs as root: base %s is not :nonroot and there is no USER", image)
	}
	if image == "scratch" {
		certs := slices.ContainsFunc(final, func(in dockerfileInstr) bool {
			return in.cmd == "COPY" && strings.Contains(in.args, "ca-certificates")
		})
		if !certs {
			t.Error("FROM scratch without CA certificates: Telegram and Twilio are HTTPS")
		}
	}
	if !slices.Contains(volumes, "/data") {
		t.Errorf("VOLUME %q, want /data", volumes)
	}
	env := imageEnv(t)
	if got := envValue(env, "OTPGATE_DATA_DIR"); got != "/data" {
		t.Errorf("ENV OTPGATE_DATA_DIR=%q, want /data", got)
	}
	_, opsPort, err := net.SplitHostPort(envValue(env, "OTPGATE_OPS_LISTEN"))
	if err != nil {
		t.Errorf("ENV OTPGATE_OPS_LISTEN=%q: %v", envValue(env, "OTPGATE_OPS_LISTEN"), err)
	}
	for _, p := range []string{opsPort, "8443"} {
		if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("EXPOSE %q lacks %s", exposed, p)
		}
	}
	if entrypoint != `["/otpgate"]` || cmd != `["serve"]` {
		t.Errorf(`ENTRYPOINT %s CMD %s, want ["/otpgate"] and ["serve"]`, entrypoint, cmd)
	}
}

// Just enough of the Compose specification.
type composeProject struct {
	Services map[string]struct {
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		ReadOnly    bool              `yaml:"read_only"`
		SecurityOpt []string          `yaml:"security_opt"`
		CapDrop     []string          `yaml:"cap_drop"`
		Restart     string            `yaml:"restart"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// interpolation is Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves Compose variables from dotenv, as `docker compose`
// does, and fails where Compose would refuse to start.
func interpolate(t *testing.T, s string, dotenv map[string]string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		name, op, arg := sub[1], sub[2], sub[3]
		v, set := dotenv[name]
		switch {
		case set && v != "":
			return v
		case strings.HasSuffix(op, "-"):
			return arg
		case strings.HasSuffix(op, "?"):
			t.Fatalf("compose would refuse to start: %s: %s", name, arg)
		}
		return ""
	})
}

func composeService(t *testing.T) (composeProject, string) {
	t.Helper()
	docs := yamlDocs(t, composeFile)
	var p composeProject
	if err := docs[0].Decode(&p); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	if len(p.Services) != 1 {
		t.Fatalf("%s: %d services, want one otpgate service", composeFile, len(p.Services))
	}
	for name := range p.Services {
		return p, name
	}
	return p, ""
}

func TestCompose(t *testing.T) {
	p, name := composeService(t)
	s := p.Services[name]
	// Compose reads build.dockerfile relative to build.context.
	built, errBuilt := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile))
	ours, errOurs := os.Stat(dockerfile)
	if errBuilt != nil || errOurs != nil || !os.SameFile(built, ours) {
		t.Errorf("build %s + %s is not %s (%v, %v)", s.Build.Context, s.Build.Dockerfile, dockerfile, errBuilt, errOurs)
	}
	if _, err := os.Stat(filepath.Join(s.Build.Context, "go.mod")); err != nil {
		t.Errorf("build context %s has no go.mod: %v", s.Build.Context, err)
	}
	if !s.ReadOnly {
		t.Error("read_only must be true")
	}
	if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("security_opt %q lacks no-new-privileges:true", s.SecurityOpt)
	}
	if !slices.Equal(s.CapDrop, []string{"ALL"}) {
		t.Errorf("cap_drop %q, want [ALL]", s.CapDrop)
	}
	if s.Restart != "unless-stopped" {
		t.Errorf("restart %q, want unless-stopped", s.Restart)
	}
	dataVolume := ""
	for _, v := range s.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.TrimSuffix(dst, ":rw") == "/data" {
			dataVolume = src
		}
	}
	if _, named := p.Volumes[dataVolume]; !named {
		t.Errorf("/data must be a named volume; volumes %q, declared %v", s.Volumes, p.Volumes)
	}
	_, opsPort, err := net.SplitHostPort(s.Environment["OTPGATE_OPS_LISTEN"])
	if err != nil {
		t.Fatalf("OTPGATE_OPS_LISTEN=%q: %v", s.Environment["OTPGATE_OPS_LISTEN"], err)
	}
	for _, port := range s.Ports {
		parts := strings.Split(port, ":")
		if parts[len(parts)-1] == opsPort && (len(parts) != 3 || parts[0] != "127.0.0.1") {
			t.Errorf("ports %q publishes the ops port beyond 127.0.0.1", port)
		}
	}
	if !slices.ContainsFunc(s.Ports, func(p string) bool { return p == "127.0.0.1:"+opsPort+":"+opsPort }) {
		t.Errorf("ports %q: want the ops port %s on 127.0.0.1", s.Ports, opsPort)
	}
	for _, sec := range s.Secrets {
		if p.Secrets[sec].File == "" {
			t.Errorf("secret %s has no file source", sec)
		}
	}
}

// ---------------------------------------------------------------------------
// The environment checks, one per deployment

func TestComposeEnvironment(t *testing.T) {
	p, name := composeService(t)
	s := p.Services[name]
	d := deployment{shipped: map[string]string{}}
	for k, v := range s.Environment {
		v = interpolate(t, v, sampleValues) // the operator's .env
		if fv, ok := variable(k); ok && fv.FileFor != "" {
			sec, found := strings.CutPrefix(v, "/run/secrets/")
			if !found || !slices.Contains(s.Secrets, sec) {
				t.Errorf("%s=%s is not one of the service's secrets %q under /run/secrets", k, v, s.Secrets)
			}
		}
		d.env = append(d.env, k+"="+v)
	}
	slices.Sort(d.env) // map order is random; names are unique
	d.env = append(d.env, imageEnv(t)...)
	d.check(t, config.Serve)
}

// podEnvironment assembles a container's environment: env, then envFrom
// ConfigMaps, then the image's ENV; *_FILE paths must be files of a
// mounted Secret, whose example content becomes the shipped file.
func podEnvironment(t *testing.T, objs map[string]object, ps podSpec, c container) deployment {
	t.Helper()
	d := deployment{shipped: map[string]string{}}
	for _, e := range c.Env {
		if e.Value == nil {
			t.Errorf("%s: env %s uses valueFrom; put secrets in files, settings in the ConfigMap", c.Name, e.Name)
			continue
		}
		v := *e.Value
		if fv, ok := variable(e.Name); ok && fv.FileFor != "" {
			d.shipped[e.Name] = secretFile(t, objs, ps, c, e.Name, v)
		}
		d.env = append(d.env, e.Name+"="+v)
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm := mustGet(t, objs, "ConfigMap/"+ef.ConfigMapRef.Name)
		var kvs []string
		for k, v := range cm.Data {
			kvs = append(kvs, k+"="+v)
		}
		slices.Sort(kvs)
		d.env = append(d.env, kvs...)
	}
	d.env = append(d.env, imageEnv(t)...)
	return d
}

// secretFile resolves path through the container's mounts to a key of a
// Secret volume and returns that key's value in the example Secret.
func secretFile(t *testing.T, objs map[string]object, ps podSpec, c container, name, path string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		i := slices.IndexFunc(ps.Volumes, func(v volume) bool { return v.Name == m.Name })
		if i < 0 || ps.Volumes[i].Secret == nil {
			t.Errorf("%s: %s=%s is under %s, which is not a Secret volume", c.Name, name, path, m.MountPath)
			return ""
		}
		if !m.ReadOnly {
			t.Errorf("%s: the secret mount %s must be readOnly", c.Name, m.MountPath)
		}
		sv := ps.Volumes[i].Secret
		secret := mustGet(t, objs, "Secret/"+sv.SecretName)
		for _, it := range sv.Items {
			if it.Path == rel {
				v, ok := secret.StringData[it.Key]
				if !ok {
					t.Errorf("%s: %s reads key %s, which the example Secret %s lacks", c.Name, name, it.Key, sv.SecretName)
				}
				return v
			}
		}
		if len(sv.Items) == 0 {
			if v, ok := secret.StringData[rel]; ok {
				return v
			}
		}
		t.Errorf("%s: %s=%s names no file of Secret %s", c.Name, name, path, sv.SecretName)
		return ""
	}
	t.Errorf("%s: %s=%s is not under any volume mount", c.Name, name, path)
	return ""
}

func TestKubernetesEnvironment(t *testing.T) {
	objs, _ := manifests(t)
	var ss statefulSetSpec
	decodeSpec(t, mustGet(t, objs, "StatefulSet/otpgate"), &ss)
	ps := ss.Template.Spec
	t.Run("StatefulSet", func(t *testing.T) {
		podEnvironment(t, objs, ps, ps.Containers[0]).check(t, config.Serve)
	})
	t.Run("import pod", func(t *testing.T) {
		var ip podSpec
		decodeSpec(t, mustGet(t, objs, "Pod/otpgate-import"), &ip)
		i := slices.IndexFunc(ip.Containers, func(c container) bool { return slices.Contains(c.Args, "import") })
		if i < 0 {
			t.Fatal("the import pod runs no `otpgate import`")
		}
		c := ip.Containers[i]
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m.Name
		}
		vi := slices.IndexFunc(ip.Volumes, func(v volume) bool { return v.Name == mounts["/data"] })
		want := ss.VolumeClaimTemplates[0].Metadata.Name + "-otpgate-0"
		if vi < 0 || ip.Volumes[vi].PersistentVolumeClaim == nil || ip.Volumes[vi].PersistentVolumeClaim.ClaimName != want {
			t.Errorf("the import pod must mount the claim %s at /data", want)
		}
		podEnvironment(t, objs, ip, c).check(t, config.Import)
	})
}

func TestSystemdEnvironment(t *testing.T) {
	creds := "/run/credentials/otpgate.service"
	unitEnv := unitEnvironment(t, creds)
	ids := map[string]bool{}
	for _, lc := range unitEntries(t, unitFile)["Service"]["LoadCredential"] {
		id, src, ok := strings.Cut(lc, ":")
		if !ok || !filepath.IsAbs(src) {
			t.Errorf("LoadCredential=%s: want ID:/absolute/path", lc)
		}
		ids[id] = true
	}
	d := deployment{shipped: map[string]string{}}
	// EnvironmentFile= overrides Environment=: its lines come first.
	f, err := os.Open(envExampleFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	fromFile := map[string]bool{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not NAME=value", envExampleFile, n)
		}
		if _, inUnit := unitEnv[k]; inUnit {
			t.Errorf("%s:%d: %s is set by the unit; the file would override it", envExampleFile, n, k)
		}
		fromFile[k] = true
		d.env = append(d.env, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var kvs []string
	for k, v := range unitEnv {
		if fv, ok := variable(k); ok && fv.FileFor != "" {
			id, ok := strings.CutPrefix(v, creds+"/")
			if !ok || !ids[id] {
				t.Errorf("%s=%s is not a credential loaded with LoadCredential= (%v)", k, v, ids)
			}
		}
		kvs = append(kvs, k+"="+v)
	}
	slices.Sort(kvs)
	d.env = append(d.env, kvs...)
	d.check(t, config.Serve)
}
