package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/internal/testenv"
	"lectern/internal/testpeer"
)

const clusterAdmin = "cluster-admin-token-0123456789"

// clusterApp starts a cluster node on loopback: the settings an operator gives
// (Redis, node id, region, its public URL, the shared secret and admin token).
func clusterApp(t *testing.T, redisURL, id, region string, extra ...string) (*app, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
	base := "http://" + addr
	cfg := testConfig(t, append([]string{"-http", addr, "-public-url", base, "-redis-url", redisURL, "-node-id", id,
		"-region", region, "-token-secret", testSecret, "-admin-token", clusterAdmin, "-record", "off"}, extra...)...)
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.shutdown(ctx)
	})
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	return a, base
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two nodes on one Redis: a session created on one is served, changed and deleted
// on the other; a token minted on one works on the other; /api/nodes lists both
// with their regions; the trainer going live on one node is an event on the
// other's pages.
func TestClusterNodesShareSessions(t *testing.T) {
	rds := testenv.StartRedis(t)
	hnApp, hn := clusterApp(t, rds.URL(), "hn-1", "north")
	_, hue := clusterApp(t, rds.URL(), "hue-1", "centre")
	if banner := hnApp.banner(); !strings.Contains(banner, "Cluster node hn-1, region north; Redis reachable") {
		t.Errorf("the banner does not say the node is clustered:\n%s", banner)
	}

	id := createSession(t, hn, clusterAdmin, "Chuyển đổi số - Bài 1")
	if code, body := get(t, hue+"/api/sessions/"+id, clusterAdmin); code != http.StatusOK || !strings.Contains(body, "Chuyển đổi số - Bài 1") {
		t.Fatalf("the other node's GET of the session: %d %s", code, body)
	}
	site := mintToken(t, hue, clusterAdmin, id, "site")
	if code, body := get(t, hn+"/api/sessions/"+id, site); code != http.StatusOK {
		t.Fatalf("a token minted on hue-1, on hn-1: %d %s", code, body)
	}

	code, body := get(t, hue+"/api/nodes", clusterAdmin)
	var nodes struct {
		Clustered bool   `json:"clustered"`
		Self      string `json:"self"`
		Nodes     []struct {
			ID, Region, URL string
		} `json:"nodes"`
		Regions []struct{ Region string } `json:"regions"`
	}
	if err := json.Unmarshal([]byte(body), &nodes); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/nodes: %d %s", code, body)
	}
	if !nodes.Clustered || nodes.Self != "hue-1" || len(nodes.Nodes) != 2 || nodes.Nodes[0].ID != "hn-1" ||
		nodes.Nodes[0].URL != hn || nodes.Nodes[1].Region != "centre" || len(nodes.Regions) != 2 {
		t.Fatalf("GET /api/nodes: %s", body)
	}
	if code, _ := get(t, hue+"/api/nodes", site); code != http.StatusForbidden {
		t.Fatalf("GET /api/nodes with a site token: %d", code)
	}

	// A page on hue-1 follows the session; the trainer publishes on hn-1.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hue+"/api/sessions/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+site)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events on hue-1: %d", resp.StatusCode)
	}
	events := bufio.NewReader(resp.Body)
	if _, err := events.ReadString('\n'); err != nil { // the stream is open (its first line)
		t.Fatal(err)
	}
	trainer := mintToken(t, hn, clusterAdmin, id, "trainer")
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, sdpSignal(t, hn+"/whip/"+id, trainer))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stop := playSynthetic(ctx, pub)
	defer stop()
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("hue-1's page never heard the trainer go live on hn-1: %v", err)
		}
		if strings.TrimSpace(line) == "event: session.live" {
			break
		}
	}

	// Deleted on one node, gone on the other.
	req, _ = http.NewRequest(http.MethodDelete, hue+"/api/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+clusterAdmin)
	dresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dresp.Body.Close()
	if code, body := get(t, hn+"/api/sessions/"+id, clusterAdmin); code != http.StatusNotFound {
		t.Fatalf("hn-1 after hue-1 deleted the session: %d %s", code, body)
	}
}
