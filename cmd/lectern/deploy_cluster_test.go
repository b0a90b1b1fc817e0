package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDockerComposeCluster checks docker-compose.cluster.yml as a file (Docker is not
// here to run it): Redis with its append-only file, two Lectern nodes whose
// environments are valid clustered configurations sharing Redis, the token secret,
// the admin token and the bucket, with their own node ids, regions, public URLs
// and ports; no credential defaulted.
func TestDockerComposeCluster(t *testing.T) {
	raw := repoFile(t, "docker-compose.cluster.yml")
	var c composeFile
	if err := yaml.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("docker-compose.cluster.yml is not valid YAML: %v", err)
	}
	var redis struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
			Image   string   `yaml:"image"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(raw), &redis); err != nil {
		t.Fatal(err)
	}
	if r := redis.Services["redis"]; !strings.HasPrefix(r.Image, "redis:") || !strings.Contains(strings.Join(r.Command, " "), "--appendonly yes") {
		t.Errorf("redis service: %+v, want the official image with --appendonly yes", r)
	}
	vars := map[string]string{"PUBLIC_IP": "203.0.113.10", "LECTERN_ADMIN_TOKEN": "change-me-please-0123",
		"LECTERN_TOKEN_SECRET": "0123456789abcdef0123456789abcdef", "REDIS_PASSWORD": "a-long-redis-password",
		"MINIO_ROOT_USER": "lectern", "MINIO_ROOT_PASSWORD": "a-long-minio-password"}
	required := regexp.MustCompile(`^\$\{[A-Z0-9_]+:\?[^}]+\}$`)
	configs := map[string]config{}
	for _, name := range []string{"lectern-origin", "lectern-edge"} {
		svc, ok := c.Services[name]
		if !ok || svc.Environment == nil {
			t.Fatalf("service %s with an environment expected", name)
		}
		for k, v := range svc.Environment {
			if strings.Contains(k, "SECRET") || strings.Contains(k, "ACCESS_KEY") || k == "LECTERN_ADMIN_TOKEN" {
				if !required.MatchString(v) {
					t.Errorf("%s: %s = %q: a credential must be required with ${VAR:?message}", name, k, v)
				}
			}
		}
		if svc.DependsOn["redis"].Condition != "service_healthy" || svc.DependsOn["minio"].Condition != "service_healthy" {
			t.Errorf("%s depends_on %+v, want redis and minio healthy", name, svc.DependsOn)
		}
		env := map[string]string{"LECTERN_HTTPS": ":8443"} // the image's own default (Dockerfile ENV)
		for k, v := range svc.Environment {
			env[k] = interpolate(t, v, vars)
		}
		cfg, err := parseConfig(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: the compose environment is not a valid configuration:\n%v", name, err)
		}
		configs[name] = cfg
		// The announced WebRTC port is published as itself; the public URL's port is
		// published to the HTTP port.
		udp := env["LECTERN_WEBRTC_UDP_PORT"]
		if !slices.Contains(svc.Ports, udp+":"+udp+"/udp") {
			t.Errorf("%s: ports %v do not publish the WebRTC port %s as itself", name, svc.Ports, udp)
		}
		port := cfg.PublicURL[strings.LastIndex(cfg.PublicURL, ":")+1:]
		if !slices.Contains(svc.Ports, port+":8080/tcp") {
			t.Errorf("%s: public URL %s, but ports %v", name, cfg.PublicURL, svc.Ports)
		}
	}
	o, e := configs["lectern-origin"], configs["lectern-edge"]
	if o.RedisURL == "" || o.RedisURL != e.RedisURL || o.TokenSecret != e.TokenSecret || o.AdminToken != e.AdminToken ||
		o.S3Bucket != e.S3Bucket || o.S3Endpoint != e.S3Endpoint {
		t.Errorf("the nodes must share Redis, the secrets and the bucket: origin %+v, edge %+v", o, e)
	}
	if o.NodeID == e.NodeID || o.Region == e.Region || o.PublicURL == e.PublicURL || o.UDPPort == e.UDPPort {
		t.Errorf("the nodes need their own id, region, URL and WebRTC port: origin %s %s %s %d, edge %s %s %s %d",
			o.NodeID, o.Region, o.PublicURL, o.UDPPort, e.NodeID, e.Region, e.PublicURL, e.UDPPort)
	}
}
