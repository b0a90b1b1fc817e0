package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/catalog"
	"lectern/cluster"
	"lectern/internal/testenv"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// nodesServer is a Server with what /api/nodes reads; cfg adjusts its Config.
func nodesServer(t *testing.T, adjust func(*Config)) *Server {
	t.Helper()
	cat, log, broker := newStackBase(t)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: log})
	edge, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer, AdminToken: testAdmin,
		PublicURL: "http://10.0.0.2:8080", Logger: log}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := any(h).(io.Closer); ok { // the cluster's request paths, when there are
			_ = c.Close()
		}
		broker.Close()
		reg.CloseAll()
		_ = edge.Close()
	})
	return h
}

// getNodes calls GET /api/nodes with token ("" for none).
func getNodes(t *testing.T, h http.Handler, token string) (int, nodesView, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/nodes", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var v nodesView
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("GET /api/nodes: %v in %s", err, w.Body)
		}
	}
	return w.Code, v, w.Body.String()
}

// A single node lists itself: not clustered, its URL and load, no relays. Only
// the admin may ask.
func TestNodesSingle(t *testing.T) {
	h := nodesServer(t, func(c *Config) {
		c.NodeLoad = func() cluster.Load {
			return cluster.Load{Subscribers: 42, MaxSubscribers: 500, CPU: 0.25, Sessions: []string{"abc"}}
		}
	})
	code, v, body := getNodes(t, h, testAdmin)
	if code != http.StatusOK {
		t.Fatalf("GET /api/nodes = %d %s", code, body)
	}
	if v.Clustered || !v.Healthy || len(v.Nodes) != 1 || len(v.Relays) != 0 || len(v.Regions) != 1 {
		t.Fatalf("single node: %s", body)
	}
	n := v.Nodes[0]
	if !n.Self || n.URL != "http://10.0.0.2:8080" || n.Load.Subscribers != 42 || n.Load.CPU != 0.25 || n.Started.IsZero() {
		t.Fatalf("self: %+v", n)
	}
	if !strings.Contains(body, `"relays":[]`) || !strings.Contains(body, `"clustered":false`) {
		t.Fatalf("empty lists must be [] and clustered false: %s", body)
	}

	// Without NodeLoad the registry is counted.
	h = nodesServer(t, nil)
	h.cfg.Registry.Session("abcdefghij") // a session with no one: not listed
	if _, v, body = getNodes(t, h, testAdmin); len(v.Nodes) != 1 || v.Nodes[0].Load.Subscribers != 0 || len(v.Nodes[0].Load.Sessions) != 0 {
		t.Fatalf("idle single node: %s", body)
	}

	// 401 without a token or with a forged one, 403 for a participant.
	if code, _, body := getNodes(t, h, ""); code != http.StatusUnauthorized || !strings.Contains(body, "error") {
		t.Fatalf("no token: %d %s", code, body)
	}
	if code, _, _ := getNodes(t, h, "not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("forged token: %d", code)
	}
	s, err := h.cfg.Catalog.Create(catalog.NewSession{Title: "Bài 1"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := h.cfg.Tokens.Mint(auth.MintRequest{Session: s.ID, Role: auth.RoleTrainer, Name: "trainer", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := getNodes(t, h, tok); code != http.StatusForbidden || !strings.Contains(body, "admin") {
		t.Fatalf("trainer token: %d %s", code, body)
	}
}

// A cluster node lists every live node of the cluster (from Redis) with its region,
// URL and load, and the regions; with Redis down it answers with itself, unhealthy,
// and the reason.
func TestNodesCluster(t *testing.T) {
	rds := testenv.StartRedis(t)
	ctx := context.Background()
	open := func(id, region, url string, subs int) *cluster.Cluster {
		c, err := cluster.Open(ctx, cluster.Config{RedisURL: rds.URL(), NodeID: id, Region: region, PublicURL: url,
			Heartbeat: 200 * time.Millisecond,
			Load:      func() cluster.Load { return cluster.Load{Subscribers: subs, Sessions: []string{"abcdefghij"}} }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	hn := open("hn-1", "north", "http://10.0.0.1:8080", 3)
	open("hue-1", "centre", "http://10.0.1.1:8080", 40)
	open("hue-2", "centre", "http://10.0.1.2:8080", 2)
	h := nodesServer(t, func(c *Config) { c.Cluster = hn })

	code, v, body := getNodes(t, h, testAdmin)
	if code != http.StatusOK || !v.Clustered || !v.Healthy || v.Self != "hn-1" || len(v.Nodes) != 3 {
		t.Fatalf("GET /api/nodes = %d %s", code, body)
	}
	for i, want := range []string{"hn-1", "hue-1", "hue-2"} {
		if n := v.Nodes[i]; n.ID != want || n.Self != (want == "hn-1") || n.URL == "" || n.Seen.IsZero() {
			t.Fatalf("node %d: %+v, want %s", i, n, want)
		}
	}
	if v.Nodes[1].Load.Subscribers != 40 || v.Nodes[1].Region != "centre" || len(v.Nodes[1].Load.Sessions) != 1 {
		t.Fatalf("hue-1's load: %+v", v.Nodes[1])
	}
	if len(v.Regions) != 2 || v.Regions[0].Region != "centre" || len(v.Regions[0].Nodes) != 2 || v.Regions[0].Subscribers != 42 ||
		v.Regions[1].Region != "north" {
		t.Fatalf("regions: %+v", v.Regions)
	}
	if code, _, _ := getNodes(t, h, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}

	rds.Stop()
	code, v, body = getNodes(t, h, testAdmin)
	if code != http.StatusOK || v.Healthy || !strings.Contains(v.Error, "unavailable") || len(v.Nodes) != 1 || v.Nodes[0].ID != "hn-1" {
		t.Fatalf("Redis down: %d %s", code, body)
	}
}
