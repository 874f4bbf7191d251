package deployments

import (
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/config"
)

// The PostgreSQL mode on Kubernetes: a kustomization of its own.
const pgKubeDir = "kubernetes/postgresql"

// Just enough of the Kubernetes API for the PostgreSQL mode's objects.
type (
	deploymentSpec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	pdbSpec struct {
		MinAvailable   any `yaml:"minAvailable"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	ingressSpec struct {
		TLS []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
		Rules []struct {
			Host string `yaml:"host"`
			HTTP struct {
				Paths []struct {
					Path    string `yaml:"path"`
					Backend struct {
						Service struct {
							Name string `yaml:"name"`
							Port struct {
								Name   string `yaml:"name"`
								Number int    `yaml:"number"`
							} `yaml:"port"`
						} `yaml:"service"`
					} `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	}
)

// count reads a Kubernetes int-or-string field that must be a whole number
// here (percentages round in ways that are easy to get wrong with 2 pods).
func count(t *testing.T, what string, v any) int {
	t.Helper()
	n, ok := v.(int)
	if !ok {
		t.Fatalf("%s = %v: want a whole number of pods", what, v)
	}
	return n
}

// pgDeployment decodes the PostgreSQL mode's Deployment.
func pgDeployment(t *testing.T, objs map[string]object) deploymentSpec {
	t.Helper()
	var ds deploymentSpec
	decodeSpec(t, mustGet(t, objs, "Deployment/otpgate"), &ds)
	if len(ds.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(ds.Template.Spec.Containers))
	}
	return ds
}

func TestKubernetesPostgreSQL(t *testing.T) {
	objs, from := manifestsIn(t, pgKubeDir)
	ds := pgDeployment(t, objs)
	labels := ds.Template.Metadata.Labels

	replicas := 0
	if ds.Replicas != nil {
		replicas = *ds.Replicas
	}
	if replicas < 2 {
		t.Errorf("Deployment replicas %d, want at least 2: the PostgreSQL mode is for availability", replicas)
	}
	if !selects(ds.Selector.MatchLabels, labels) {
		t.Errorf("Deployment selector %v does not match the pod template's labels %v", ds.Selector.MatchLabels, labels)
	}
	ru := ds.Strategy.RollingUpdate
	switch {
	case ds.Strategy.Type != "RollingUpdate" || ru == nil:
		t.Errorf("strategy %+v: want RollingUpdate with maxUnavailable and maxSurge written out", ds.Strategy)
	default:
		unavailable, surge := count(t, "maxUnavailable", ru.MaxUnavailable), count(t, "maxSurge", ru.MaxSurge)
		if unavailable > 1 || unavailable >= replicas {
			t.Errorf("rollingUpdate.maxUnavailable %d: a rollout must keep replicas serving", unavailable)
		}
		if unavailable == 0 && surge < 1 {
			t.Error("rollingUpdate maxUnavailable 0 and maxSurge 0: the rollout cannot proceed")
		}
	}

	ps := ds.Template.Spec
	checkHardened(t, "Deployment", ps)
	c := ps.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("container args %q, want [serve]", c.Args)
	}
	opsPort := checkServeContainer(t, c)
	checkConfigMap(t, objs, c, opsPort)

	// No state on a volume: every volume is a Secret.
	for _, v := range ps.Volumes {
		if v.Secret == nil {
			t.Errorf("volume %s is not a Secret: in the PostgreSQL mode all state is in the database", v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/data" {
			t.Errorf("%s is mounted at /data: the PostgreSQL mode keeps no data directory", m.Name)
		}
	}

	// Replicas spread over nodes.
	spread := slices.ContainsFunc(ps.TopologySpreadConstraints, func(tc topologySpread) bool {
		return tc.TopologyKey == "kubernetes.io/hostname" && tc.MaxSkew == 1 && selects(tc.LabelSelector.MatchLabels, labels)
	})
	if !spread {
		t.Errorf("no topologySpreadConstraint with maxSkew 1 over kubernetes.io/hostname selecting the pods: %+v", ps.TopologySpreadConstraints)
	}

	// Webhook mode: the webhook port is OTPGATE_WEBHOOK_LISTEN's, and a
	// ClusterIP Service reaches it on the ready replicas.
	cm := configMapOf(t, objs, c)
	if cm.Data["OTPGATE_WEBHOOK_URL"] == "" {
		t.Error("ConfigMap sets no OTPGATE_WEBHOOK_URL: the manifests run webhook mode behind the Service")
	}
	webhookPort := containerPort(c, "webhook")
	if _, port, err := net.SplitHostPort(cm.Data["OTPGATE_WEBHOOK_LISTEN"]); err != nil || port != strconv.Itoa(webhookPort) {
		t.Errorf("ConfigMap OTPGATE_WEBHOOK_LISTEN=%q, want the container port named webhook (%d)", cm.Data["OTPGATE_WEBHOOK_LISTEN"], webhookPort)
	}
	checkOpsService(t, objs, "otpgate", labels, opsPort)
	var hook serviceSpec
	decodeSpec(t, mustGet(t, objs, "Service/otpgate-webhook"), &hook)
	if !selects(hook.Selector, labels) {
		t.Errorf("Service otpgate-webhook selector %v does not select the pods (labels %v)", hook.Selector, labels)
	}
	if hook.Type != "" && hook.Type != "ClusterIP" || hook.ClusterIP == "None" {
		t.Errorf("Service otpgate-webhook type %q clusterIP %q: want a ClusterIP Service behind the ingress", hook.Type, hook.ClusterIP)
	}
	hookPorts := map[string]int{} // Service port name → number, for the ingress
	for _, p := range hook.Ports {
		if p.TargetPort == "webhook" || p.TargetPort == webhookPort {
			hookPorts[p.Name] = p.Port
		}
		if p.TargetPort == "ops" || p.TargetPort == opsPort {
			t.Errorf("Service otpgate-webhook exposes the ops port")
		}
	}
	if len(hookPorts) == 0 {
		t.Errorf("Service otpgate-webhook ports %+v do not reach the webhook port %d", hook.Ports, webhookPort)
	}

	// Drains take one replica at a time, and never the last.
	var pdbs []string
	for key, o := range objs {
		if o.Kind != "PodDisruptionBudget" {
			continue
		}
		pdbs = append(pdbs, key)
		if o.APIVersion != "policy/v1" {
			t.Errorf("%s apiVersion %s, want policy/v1", key, o.APIVersion)
		}
		var pdb pdbSpec
		decodeSpec(t, o, &pdb)
		if !selects(pdb.Selector.MatchLabels, labels) {
			t.Errorf("%s selector %v does not select the Deployment's pods (labels %v)", key, pdb.Selector.MatchLabels, labels)
		}
		switch {
		case (pdb.MinAvailable == nil) == (pdb.MaxUnavailable == nil):
			t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", key)
		case pdb.MinAvailable != nil:
			if n := count(t, "minAvailable", pdb.MinAvailable); n < 1 || n >= replicas {
				t.Errorf("%s minAvailable %d with %d replicas: want at least 1 and fewer than the replicas (or no drain can proceed)", key, n, replicas)
			}
		default:
			if n := count(t, "maxUnavailable", pdb.MaxUnavailable); n < 1 || n >= replicas {
				t.Errorf("%s maxUnavailable %d with %d replicas: want at least 1 and fewer than the replicas", key, n, replicas)
			}
		}
	}
	if len(pdbs) != 1 {
		t.Errorf("PodDisruptionBudgets %q, want one", pdbs)
	}

	// The ingress example is the load balancer: TLS, then the webhook Service.
	ing := mustGet(t, objs, "Ingress/otpgate-webhook")
	if !strings.Contains(from["Ingress/otpgate-webhook"], ".example.") {
		t.Errorf("the Ingress comes from %s; its host and TLS are the operator's: keep it an example", from["Ingress/otpgate-webhook"])
	}
	var is ingressSpec
	decodeSpec(t, ing, &is)
	if len(is.TLS) == 0 {
		t.Error("the Ingress has no TLS: Telegram delivers webhooks only over https")
	}
	backends := 0
	for _, r := range is.Rules {
		for _, p := range r.HTTP.Paths {
			backends++
			b := p.Backend.Service
			_, byName := hookPorts[b.Port.Name]
			byNumber := false
			for _, n := range hookPorts {
				byNumber = byNumber || n == b.Port.Number
			}
			if b.Name != "otpgate-webhook" || !(byName || byNumber) {
				t.Errorf("Ingress path %s goes to %s port %+v, want otpgate-webhook's webhook port %v", p.Path, b.Name, b.Port, hookPorts)
			}
		}
	}
	if backends == 0 {
		t.Error("the Ingress routes nothing")
	}

	secret := checkExampleSecret(t, objs, from)
	if _, ok := secret.StringData["database-url"]; !ok {
		t.Error("secret.example.yaml has no database-url key")
	}
	checkKustomization(t, objs, from)

	// The image is the embedded mode's, rewritten by the same images entry.
	embedded, _ := manifests(t)
	var ss statefulSetSpec
	decodeSpec(t, mustGet(t, embedded, "StatefulSet/otpgate"), &ss)
	if want := ss.Template.Spec.Containers[0].Image; c.Image != want {
		t.Errorf("Deployment image %s, want the StatefulSet's %s", c.Image, want)
	}
	if got, want := mustGet(t, objs, "Kustomization/").Images, mustGet(t, embedded, "Kustomization/").Images; !reflect.DeepEqual(got, want) {
		t.Errorf("kustomization images %+v, want the embedded mode's %+v", got, want)
	}
}

func TestKubernetesPostgreSQLEnvironment(t *testing.T) {
	objs, _ := manifestsIn(t, pgKubeDir)
	ps := pgDeployment(t, objs).Template.Spec
	d := podEnvironment(t, objs, ps, ps.Containers[0])
	d.check(t, config.Serve)
	checkPostgreSQLMode(t, d)
}

// checkPostgreSQLMode: the environment selects PostgreSQL, from a secret
// file, in webhook mode.
func checkPostgreSQLMode(t *testing.T, d deployment) {
	t.Helper()
	var names []string
	for _, kv := range d.env {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	for _, want := range []string{"OTPGATE_DATABASE_URL_FILE", "OTPGATE_WEBHOOK_SECRET_FILE"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not set", want)
		}
	}
	cfg, err := config.Load(d.materialise(t, true))
	if err != nil {
		t.Fatalf("Load: %v", err) // check reported it in full
	}
	if !cfg.Database() {
		t.Error("the environment does not select PostgreSQL (OTPGATE_DATABASE_URL)")
	}
	if cfg.WebhookURL == "" {
		t.Error("the environment is not webhook mode: several replicas take updates behind the balancer")
	}
}
