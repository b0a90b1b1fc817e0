package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// There is no container engine on the test machines, so the deployment files are
// checked as files: docker-compose.yml must parse, its Lectern environment must be a
// valid configuration, and the hardening (no default credentials, console on loopback,
// health checks, non-root images, a build context without secrets) must stay.

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// composeVar matches ${NAME}, ${NAME:-default} and ${NAME:?message} (Compose interpolation).
var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}`)

// interpolate substitutes variables as Compose does, from vars; a required variable
// missing from vars is reported.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		if v, ok := vars[g[1]]; ok && v != "" {
			return v
		}
		if g[2] == "?" {
			t.Errorf("required variable %s not set in the test", g[1])
		}
		return g[3]
	})
}

func TestDockerCompose(t *testing.T) {
	raw := repoFile(t, "docker-compose.yml")
	var c composeFile
	if err := yaml.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("docker-compose.yml is not valid YAML: %v", err)
	}
	lectern, minio := c.Services["lectern"], c.Services["minio"]
	if lectern.Environment == nil || minio.Environment == nil {
		t.Fatalf("services lectern and minio with an environment expected, got %v", c.Services)
	}

	// No default credentials: the passwords must be given (${VAR:?…}).
	for _, env := range []map[string]string{lectern.Environment, minio.Environment} {
		for k, v := range env {
			if strings.Contains(k, "PASSWORD") || strings.Contains(k, "SECRET") || strings.Contains(k, "ROOT_USER") ||
				strings.Contains(k, "ACCESS_KEY") || k == "LECTERN_ADMIN_TOKEN" {
				if !regexp.MustCompile(`^\$\{[A-Z0-9_]+:\?[^}]+\}$`).MatchString(v) {
					t.Errorf("%s = %q: a credential must be required with ${VAR:?message}, never defaulted", k, v)
				}
			}
		}
	}
	// The MinIO console only on loopback, and the S3 API not published.
	for _, p := range minio.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("minio publishes %q on every interface; bind it to 127.0.0.1", p)
		}
	}
	// Health checks, and Lectern starts once MinIO is healthy.
	if got := lectern.Healthcheck.Test; !slices.Equal(got, []string{"CMD", "/usr/local/bin/lectern", "healthcheck"}) {
		t.Errorf("lectern health check %q, want the lectern healthcheck subcommand", got)
	}
	if len(minio.Healthcheck.Test) == 0 || !strings.Contains(strings.Join(minio.Healthcheck.Test, " "), "/minio/health/live") {
		t.Errorf("minio health check %q, want /minio/health/live", minio.Healthcheck.Test)
	}
	if lectern.DependsOn["minio"].Condition != "service_healthy" {
		t.Errorf("lectern depends_on minio: %+v, want condition service_healthy", lectern.DependsOn)
	}
	// HTTPS with ACME on 80/443.
	for _, want := range []string{"80:8080/tcp", "443:8443/tcp", "8000:8000/udp", "8001:8001/udp"} {
		if !slices.Contains(lectern.Ports, want) {
			t.Errorf("lectern ports %v lack %s", lectern.Ports, want)
		}
	}

	// The environment Compose hands Lectern is a valid configuration, over HTTPS.
	vars := map[string]string{"LECTERN_DOMAIN": "lectern.example.edu", "PUBLIC_IP": "203.0.113.10",
		"LECTERN_ADMIN_TOKEN": "change-me-please-0123", "MINIO_ROOT_USER": "lectern", "MINIO_ROOT_PASSWORD": "a-long-minio-password"}
	env := map[string]string{"LECTERN_HTTPS": ":8443"} // the image's own default (Dockerfile ENV)
	for k, v := range lectern.Environment {
		env[k] = interpolate(t, v, vars)
	}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the compose environment is not a valid configuration:\n%v", err)
	}
	if !cfg.httpsOn() || cfg.PublicURL != "https://lectern.example.edu" || cfg.HTTPSAddr != ":8443" {
		t.Errorf("compose config: HTTPS %v, public URL %q, HTTPS address %q", cfg.httpsOn(), cfg.PublicURL, cfg.HTTPSAddr)
	}
}

func TestDockerImages(t *testing.T) {
	for _, name := range []string{"Dockerfile", "docker/minio/Dockerfile"} {
		df := repoFile(t, name)
		user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(df)
		if user == nil || user[1] == "root" || user[1] == "0" {
			t.Errorf("%s: runs as root; want a USER line with an unprivileged user", name)
		}
		if !strings.Contains(df, "HEALTHCHECK") {
			t.Errorf("%s: no HEALTHCHECK", name)
		}
	}
	df := repoFile(t, "Dockerfile")
	for _, port := range []string{"8000/udp", "8001/udp", "8189/udp", "8443/tcp", "8554/tcp"} {
		if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + port).MatchString(df) {
			t.Errorf("Dockerfile does not EXPOSE %s", port)
		}
	}
	// The MinIO image builds the version the tests run against.
	pin := regexp.MustCompile(`MINIO_VERSION=(\S+)`)
	image, tests := pin.FindStringSubmatch(repoFile(t, "docker/minio/Dockerfile")), pin.FindStringSubmatch(repoFile(t, "scripts/test-deps.sh"))
	if image == nil || tests == nil || image[1] != tests[1] {
		t.Errorf("MinIO version of the image %v and of the tests %v differ", image, tests)
	}

	// The build context leaves out history, local state (the token secret) and dependencies.
	ignore := strings.Fields(repoFile(t, ".dockerignore"))
	for _, want := range []string{".git", "data", "**/node_modules", "bin", "artifacts"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
