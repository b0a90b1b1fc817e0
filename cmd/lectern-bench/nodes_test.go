package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Several nodes: -url repeated and -urls add up, the publisher goes to the first or
// to -publish-url; bad combinations are refused.
func TestParseFlagsNodes(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := parseFlags([]string{"-admin-token", "x"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://127.0.0.1:8080" || !slices.Equal(cfg.Nodes, []string{cfg.URL}) || cfg.cluster() {
		t.Fatalf("default: URL %q, nodes %q", cfg.URL, cfg.Nodes)
	}
	cfg, err = parseFlags([]string{"-admin-token", "x", "-url", "http://a:1/", "-urls", "http://b:2, http://c:3", "-url", "http://d:4"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://a:1" || !slices.Equal(cfg.Nodes, []string{"http://a:1", "http://d:4", "http://b:2", "http://c:3"}) || !cfg.cluster() {
		t.Fatalf("nodes: URL %q, nodes %q", cfg.URL, cfg.Nodes)
	}
	cfg, err = parseFlags([]string{"-admin-token", "x", "-publish-url", "http://origin:1", "-urls", "http://e1:2,http://e2:3"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://origin:1" || len(cfg.Nodes) != 2 || !cfg.cluster() {
		t.Fatalf("publish node apart: URL %q, nodes %q", cfg.URL, cfg.Nodes)
	}
	for _, bad := range [][]string{
		{"-url", "http://a:1", "-url", "http://a:1"},
		{"-urls", "ftp://a"},
		{"-publish-url", "nope", "-url", "http://a:1"},
		{"-url", "http://a:1", "-url", "http://b:1", "-server-pid", "42"},
		{"-url", "http://a:1", "-url", "http://b:1", "-mode", "adapt"},
	} {
		if _, err := parseFlags(append([]string{"-admin-token", "x"}, bad...), env); err == nil {
			t.Errorf("%q: no error", strings.Join(bad, " "))
		}
	}
}

// Subscribers go round-robin over the subscribers' nodes, never to a publish-only
// node; each node's figures count its own subscribers, CPU, drops and gaps.
func TestNodesRoundRobinAndFigures(t *testing.T) {
	b := &bench{nodes: []*benchNode{
		{url: "http://e1", pid: "11", subscribe: true},
		{url: "http://e2", pid: "12", subscribe: true},
		{url: "http://origin", pid: "10"},
	}}
	var got []int
	for range 5 {
		got = append(got, b.pickNode())
	}
	if !slices.Equal(got, []int{0, 1, 0, 1, 0}) {
		t.Fatalf("round-robin: %v", got)
	}
	if pids := b.pids(); !slices.Equal(pids, []string{"11", "12", "10"}) {
		t.Fatalf("pids %v", pids)
	}
	for _, n := range got {
		b.subs = append(b.subs, &subscriber{node: n})
	}
	t0 := time.Unix(1000, 0)
	start := snapshot{at: t0, recv: []uint64{0, 0, 0, 0, 0}, lost: []int64{0, 0, 0, 0, 0},
		nodes: []nodeSnapshot{{cpu: 0}, {cpu: 0}, {cpu: 0}}}
	end := snapshot{at: t0.Add(10 * time.Second), recv: []uint64{1000, 1000, 1000, 990, 1000}, lost: []int64{0, 0, 0, 10, 0},
		nodes: []nodeSnapshot{
			{cpu: 3 * time.Second, counters: serverCounters{PacketsOut: 3000}},
			{cpu: 2 * time.Second, counters: serverCounters{PacketsOut: 2000}},
			{cpu: time.Second, counters: serverCounters{PacketsOut: 2000, QueueDrops: 0}},
		}}
	base := &step{Nodes: []nodeStep{{ServerCPU: 6}, {ServerCPU: 6}, {ServerCPU: 10}}}
	ns := b.computeNodes(start, end, [][]int64{{1 << 20}, {2 << 20}, {3 << 20}}, base)
	if ns[0].Subscribers != 3 || ns[1].Subscribers != 2 || ns[2].Subscribers != 0 {
		t.Fatalf("subscribers per node: %+v", ns)
	}
	if ns[0].ServerCPU != 30 || ns[0].CPUPerSubPct != 8 || ns[1].SeqGaps != 10 || ns[0].SeqGaps != 0 || ns[1].LossPct <= 0 {
		t.Fatalf("node figures: %+v", ns)
	}
	if ns[2].RSSMB != 3 || ns[2].Subscribes || ns[2].CPUPerSubPct != 0 {
		t.Fatalf("publish node: %+v", ns[2])
	}
}
