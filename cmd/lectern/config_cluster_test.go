package main

import (
	"os"
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// Without -redis-url a node is single, as before; with it, a node id, a region and
// the settings a cluster needs.
func TestClusterSettings(t *testing.T) {
	if c := mustParse(t, nil, nil); c.RedisURL != "" || c.NodeID != "" || c.Region != "" {
		t.Fatalf("a default config is clustered: %+v", c)
	}
	c := mustParse(t, []string{"-node-id", "edge-hue-1", "-region", "centre", "-node-max-subscribers", "300"}, map[string]string{
		"LECTERN_REDIS_URL": "redis://:pw@10.0.0.9:6379/2", "LECTERN_PUBLIC_URL": "http://10.0.0.2:8080/",
		"LECTERN_TOKEN_SECRET": testSecret,
	})
	if c.RedisURL != "redis://:pw@10.0.0.9:6379/2" || c.NodeID != "edge-hue-1" || c.Region != "centre" ||
		c.NodeMaxSubscribers != 300 || c.PublicURL != "http://10.0.0.2:8080" {
		t.Fatalf("parsed %+v", c)
	}
	// Defaults: the host name as the node id, region "default".
	c = mustParse(t, []string{"-redis-url", "rediss://redis.lan:6380", "-public-url", "https://hn.lectern.vn", "-token-secret", testSecret}, nil)
	host, _ := os.Hostname()
	if c.NodeID != nodeIDFromHost(host) || c.Region != "default" {
		t.Fatalf("defaults: node id %q (host %q), region %q", c.NodeID, host, c.Region)
	}
}

func TestClusterSettingsRefused(t *testing.T) {
	// Clustered without a public URL or a shared token secret: both named, with why.
	_, err := parseConfig([]string{"-redis-url", "redis://127.0.0.1:6379"}, env(nil))
	checkErr(t, err, []string{
		"-public-url/LECTERN_PUBLIC_URL: required with -redis-url/LECTERN_REDIS_URL",
		"-token-secret/LECTERN_TOKEN_SECRET: required with -redis-url/LECTERN_REDIS_URL, the same on every node",
	})
	// Bad values, all reported at once; a password in a bad URL is not repeated.
	_, err = parseConfig([]string{"-redis-url", "http://u:hunter2@x", "-node-id", "Edge_1", "-region", strings.Repeat("n", 33),
		"-node-max-subscribers", "-1", "-public-url", "http://a:1", "-token-secret", testSecret}, env(nil))
	checkErr(t, err, []string{
		"-redis-url/LECTERN_REDIS_URL: is not a redis:// or rediss:// URL",
		`-node-id/LECTERN_NODE_ID: "Edge_1" is not 1-32 characters of a-z, 0-9 and '-'`,
		"-region/LECTERN_REGION:",
		"-node-max-subscribers/LECTERN_NODE_MAX_SUBSCRIBERS: -1 is not a subscriber limit",
	})
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error repeats the Redis password: %v", err)
	}
	_, err = parseConfig([]string{"-redis-url", "redis://h:6379/notadb", "-public-url", "http://a:1", "-token-secret", testSecret}, env(nil))
	checkErr(t, err, []string{"-redis-url/LECTERN_REDIS_URL: is not a Redis URL"})
	// Cluster settings without -redis-url are a mistake, not silently ignored.
	_, err = parseConfig([]string{"-node-id", "a", "-region", "north", "-node-max-subscribers", "10"}, env(nil))
	checkErr(t, err, []string{
		"-node-id/LECTERN_NODE_ID: set but -redis-url/LECTERN_REDIS_URL is empty",
		"-region/LECTERN_REGION: set but -redis-url/LECTERN_REDIS_URL is empty",
		"-node-max-subscribers/LECTERN_NODE_MAX_SUBSCRIBERS: set but",
	})
}

func TestNodeIDFromHost(t *testing.T) {
	for host, want := range map[string]string{
		"lectern-edge-hue.example.vn": "lectern-edge-hue",
		"Lectern_Origin":              "lectern-origin",
		"":                            "node",
		"__":                          "node",
		strings.Repeat("a", 40):       strings.Repeat("a", 32),
		"3f2a9c1b7d4e":                "3f2a9c1b7d4e", // a container's host name
	} {
		if got := nodeIDFromHost(host); got != want {
			t.Errorf("nodeIDFromHost(%q) = %q, want %q", host, got, want)
		}
		if _, err := checkNodeName(nodeIDFromHost(host)); err != nil {
			t.Errorf("nodeIDFromHost(%q) is not a valid id: %v", host, err)
		}
	}
}
