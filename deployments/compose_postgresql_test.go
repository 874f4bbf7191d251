package deployments

import (
	"bufio"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otpgate/otpgate/internal/config"
)

// The PostgreSQL mode with Compose: the file, and its balancer's config.
const (
	pgComposeFile = "compose.postgresql.yaml"
	nginxConf     = "nginx/otpgate-webhook.conf"
)

// telegramPorts are the ports Telegram delivers webhooks to.
var telegramPorts = []string{"443", "80", "88", "8443"}

type (
	pgService struct {
		Image string `yaml:"image"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Networks    []string          `yaml:"networks"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		ReadOnly    bool     `yaml:"read_only"`
		SecurityOpt []string `yaml:"security_opt"`
		CapDrop     []string `yaml:"cap_drop"`
		Restart     string   `yaml:"restart"`
	}
	pgComposeProject struct {
		Services map[string]pgService `yaml:"services"`
		Volumes  map[string]any       `yaml:"volumes"`
		Networks map[string]*struct {
			Internal bool `yaml:"internal"`
		} `yaml:"networks"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
)

// dependsOn maps each service s waits for to the condition (the short list
// form waits for service_started).
func (s pgService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, c := range m {
			out[n] = c.Condition
		}
	}
	return out
}

func (s pgService) hardened(t *testing.T, name string) {
	t.Helper()
	if !s.ReadOnly {
		t.Errorf("%s: read_only must be true", name)
	}
	if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("%s: security_opt %q lacks no-new-privileges:true", name, s.SecurityOpt)
	}
	if !slices.Equal(s.CapDrop, []string{"ALL"}) {
		t.Errorf("%s: cap_drop %q, want [ALL]", name, s.CapDrop)
	}
	if s.Restart != "unless-stopped" {
		t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
	}
}

// pgCompose decodes compose.postgresql.yaml and sorts its services: the
// otpgate replicas (built from the Dockerfile), the database, the balancer.
func pgCompose(t *testing.T) (p pgComposeProject, replicas []string, db, lb string) {
	t.Helper()
	if err := yamlDocs(t, pgComposeFile)[0].Decode(&p); err != nil {
		t.Fatalf("%s: %v", pgComposeFile, err)
	}
	for name, s := range p.Services {
		switch {
		case s.Build.Dockerfile != "":
			replicas = append(replicas, name)
		case strings.HasPrefix(s.Image, "postgres:"):
			if db != "" {
				t.Fatalf("%s: two PostgreSQL services, %s and %s", pgComposeFile, db, name)
			}
			db = name
		case strings.HasPrefix(s.Image, "nginx:"):
			lb = name
		default:
			t.Errorf("%s: service %s is neither otpgate, PostgreSQL nor the balancer", pgComposeFile, name)
		}
	}
	slices.Sort(replicas)
	if len(replicas) < 2 || db == "" || lb == "" {
		t.Fatalf("%s: otpgate replicas %q, database %q, balancer %q: want two or more replicas, PostgreSQL and nginx", pgComposeFile, replicas, db, lb)
	}
	return p, replicas, db, lb
}

func TestComposePostgreSQL(t *testing.T) {
	p, replicas, db, lb := pgCompose(t)

	// Images: otpgate built here, the others by a fixed tag.
	for name, s := range p.Services {
		if s.Build.Dockerfile != "" {
			continue
		}
		_, tag, ok := strings.Cut(s.Image, ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("%s: image %q: pin a version tag", name, s.Image)
		}
	}

	// The database: PostgreSQL 15, durable commits, a volume, a health
	// check, a password from a file, reachable only by the replicas.
	d := p.Services[db]
	if !strings.HasPrefix(d.Image, "postgres:15") {
		t.Errorf("%s image %s, want postgres:15 (the version the tests run against)", db, d.Image)
	}
	if !slices.Contains(d.Command, "synchronous_commit=on") || !slices.Contains(d.Command, "-c") {
		t.Errorf("%s command %q: want -c synchronous_commit=on", db, d.Command)
	}
	if !slices.Contains(d.Healthcheck.Test, "pg_isready") {
		t.Errorf("%s healthcheck %q: want pg_isready", db, d.Healthcheck.Test)
	}
	dataVolume := ""
	for _, v := range d.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == "/var/lib/postgresql/data" {
			dataVolume = src
		}
	}
	if _, named := p.Volumes[dataVolume]; !named {
		t.Errorf("%s: /var/lib/postgresql/data must be a named volume; volumes %q", db, d.Volumes)
	}
	if _, set := d.Environment["POSTGRES_PASSWORD"]; set {
		t.Errorf("%s sets POSTGRES_PASSWORD as a value; use POSTGRES_PASSWORD_FILE", db)
	}
	if sec, ok := strings.CutPrefix(d.Environment["POSTGRES_PASSWORD_FILE"], "/run/secrets/"); !ok || !slices.Contains(d.Secrets, sec) {
		t.Errorf("%s POSTGRES_PASSWORD_FILE=%q is not one of its secrets %q", db, d.Environment["POSTGRES_PASSWORD_FILE"], d.Secrets)
	}
	if len(d.Ports) > 0 {
		t.Errorf("%s publishes %q: only the replicas may reach the database", db, d.Ports)
	}
	if len(d.Networks) == 0 {
		t.Errorf("%s is on the default network: put it on an internal one", db)
	}
	for _, n := range d.Networks {
		if net := p.Networks[n]; net == nil || !net.Internal {
			t.Errorf("%s is on network %s, which is not internal: true", db, n)
		}
	}

	// The replicas: the same hardened service, waiting for a healthy
	// database, no volume, the ops ports on this host only.
	first := p.Services[replicas[0]]
	hostPorts := map[string]string{}
	for _, name := range replicas {
		s := p.Services[name]
		built, errBuilt := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile))
		ours, errOurs := os.Stat(dockerfile)
		if errBuilt != nil || errOurs != nil || !os.SameFile(built, ours) {
			t.Errorf("%s: build %s + %s is not %s", name, s.Build.Context, s.Build.Dockerfile, dockerfile)
		}
		s.hardened(t, name)
		if c := s.dependsOn(t)[db]; c != "service_healthy" {
			t.Errorf("%s depends on %s with condition %q, want service_healthy", name, db, c)
		}
		if len(s.Volumes) > 0 {
			t.Errorf("%s mounts %q: in the PostgreSQL mode all state is in the database", name, s.Volumes)
		}
		if !slices.ContainsFunc(s.Networks, func(n string) bool { return slices.Contains(d.Networks, n) }) {
			t.Errorf("%s networks %q share none with %s %q", name, s.Networks, db, d.Networks)
		}
		if !reflect.DeepEqual(s.Environment, first.Environment) || !slices.Equal(s.Secrets, first.Secrets) {
			t.Errorf("%s and %s differ in environment or secrets: replicas must be alike", name, replicas[0])
		}
		_, opsPort, _ := net.SplitHostPort(s.Environment["OTPGATE_OPS_LISTEN"])
		published := false
		for _, port := range s.Ports {
			parts := strings.Split(port, ":")
			if parts[len(parts)-1] != opsPort {
				t.Errorf("%s publishes %q: only the ops port, on 127.0.0.1 (the webhook goes through %s)", name, port, lb)
				continue
			}
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s: ports %q publishes the ops port beyond 127.0.0.1", name, port)
			}
			if other, dup := hostPorts[parts[1]]; dup {
				t.Errorf("%s and %s publish the same host port %s", name, other, parts[1])
			}
			hostPorts[parts[1]], published = name, true
		}
		if !published {
			t.Errorf("%s: ports %q: want the ops port %s on 127.0.0.1", name, s.Ports, opsPort)
		}
	}

	// Every secret is a file in a git-ignored directory.
	ignored := gitignored(t)
	for name, sec := range p.Secrets {
		dir, _, _ := strings.Cut(strings.TrimPrefix(sec.File, "./"), "/")
		if sec.File == "" || !slices.Contains(ignored, "/"+dir+"/") {
			t.Errorf("secret %s: file %q is not under a directory deployments/.gitignore lists (%q)", name, sec.File, ignored)
		}
	}
	for name, s := range p.Services {
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec]; !ok {
				t.Errorf("%s uses secret %s, which is not declared", name, sec)
			}
		}
	}
}

// gitignored lists deployments/.gitignore's entries.
func gitignored(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(".gitignore")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func TestComposePostgreSQLEnvironment(t *testing.T) {
	p, replicas, _, _ := pgCompose(t)
	for _, name := range replicas {
		t.Run(name, func(t *testing.T) {
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
			checkPostgreSQLMode(t, d)
		})
	}
}

// nginxDirective matches one simple directive: name, arguments, semicolon.
var nginxDirective = regexp.MustCompile(`^\s*([a-z_]+)\s+([^;{]*?)\s*[;{]`)

// TestComposeBalancer: nginx terminates TLS on a port Telegram delivers
// to, forwards only the webhook's path, and to every replica's
// OTPGATE_WEBHOOK_LISTEN.
func TestComposeBalancer(t *testing.T) {
	p, replicas, _, lb := pgCompose(t)
	n := p.Services[lb]
	mounted := false
	for _, v := range n.Volumes {
		src, rest, _ := strings.Cut(v, ":")
		if dst, _, _ := strings.Cut(rest, ":"); filepath.Clean(src) == nginxConf && strings.HasPrefix(dst, "/etc/nginx/conf.d/") {
			mounted = true
		}
	}
	if !mounted {
		t.Fatalf("%s volumes %q do not mount %s into /etc/nginx/conf.d", lb, n.Volumes, nginxConf)
	}

	f, err := os.Open(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var upstreams, locations, listens, certs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		m := nginxDirective.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		args := strings.Fields(m[2])
		switch m[1] {
		case "server":
			if len(args) > 0 && !strings.HasPrefix(args[0], "{") {
				upstreams = append(upstreams, args[0])
			}
		case "location":
			locations = append(locations, strings.Join(args, " "))
		case "listen":
			listens = append(listens, strings.Join(args, " "))
		case "ssl_certificate", "ssl_certificate_key":
			certs = append(certs, args[0])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	var want []string
	for _, r := range replicas {
		_, port, err := net.SplitHostPort(p.Services[r].Environment["OTPGATE_WEBHOOK_LISTEN"])
		if err != nil {
			t.Fatalf("%s OTPGATE_WEBHOOK_LISTEN: %v", r, err)
		}
		want = append(want, r+":"+port)
	}
	slices.Sort(upstreams)
	if !slices.Equal(upstreams, want) {
		t.Errorf("%s upstream servers %q, want every replica's webhook address %q", nginxConf, upstreams, want)
	}
	u, err := url.Parse(sampleWebhookURL)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(locations, "= "+u.Path) {
		t.Errorf("%s locations %q: want exactly the webhook's path (= %s)", nginxConf, locations, u.Path)
	}
	if !strings.Contains(readFile(t, pgComposeFile), u.Path) {
		t.Errorf("%s does not tell the operator that the webhook URL's path is %s", pgComposeFile, u.Path)
	}
	if len(listens) != 1 || !strings.HasSuffix(listens[0], " ssl") {
		t.Fatalf("%s listen %q: want one TLS listener", nginxConf, listens)
	}
	tlsPort := strings.Fields(listens[0])[0]
	published := false
	for _, port := range n.Ports {
		parts := strings.Split(port, ":")
		if parts[len(parts)-1] == tlsPort {
			published = slices.Contains(telegramPorts, parts[len(parts)-2])
		}
	}
	if !published {
		t.Errorf("%s ports %q: publish the TLS port %s on one of Telegram's ports %q", lb, n.Ports, tlsPort, telegramPorts)
	}
	for _, c := range certs {
		sec, ok := strings.CutPrefix(c, "/run/secrets/")
		if !ok || !slices.Contains(n.Secrets, sec) {
			t.Errorf("%s: certificate %s is not one of %s's secrets %q", nginxConf, c, lb, n.Secrets)
		}
	}
	if len(certs) != 2 {
		t.Errorf("%s: %d certificate directives, want ssl_certificate and ssl_certificate_key", nginxConf, len(certs))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestModesApart: each mode is a directory or a file of its own, and the
// two Kubernetes modes never name the same objects in one kustomization.
func TestModesApart(t *testing.T) {
	for _, dir := range []string{kubeDir, pgKubeDir} {
		objs, _ := manifestsIn(t, dir)
		_, sts := objs["StatefulSet/otpgate"]
		_, dep := objs["Deployment/otpgate"]
		if sts == dep {
			t.Errorf("%s: want exactly one of the StatefulSet (embedded mode) and the Deployment (PostgreSQL mode)", dir)
		}
	}
	for _, f := range []string{composeFile, pgComposeFile} {
		has := strings.Contains(readFile(t, f), "OTPGATE_DATABASE_URL")
		if want := f == pgComposeFile; has != want {
			t.Errorf("%s mentions OTPGATE_DATABASE_URL: %v, want %v", f, has, want)
		}
	}
}
