package main

import "testing"

// An edge's relay starts with its first subscriber: the figures per added
// subscriber take the first step as the reference, per node and in all.
func TestAddedSince(t *testing.T) {
	first := step{Subscribers: 2, ServerCPU: 10, RSSMB: 100,
		Nodes: []nodeStep{{Subscribers: 0, ServerCPU: 5, RSSMB: 50}, {Subscribers: 1, ServerCPU: 3, RSSMB: 40}, {Subscribers: 1, ServerCPU: 3, RSSMB: 40}}}
	s := step{Subscribers: 102, ServerCPU: 30, RSSMB: 125,
		Nodes: []nodeStep{{Subscribers: 0, ServerCPU: 5, RSSMB: 50}, {Subscribers: 51, ServerCPU: 13, RSSMB: 52.5}, {Subscribers: 51, ServerCPU: 13, RSSMB: 52.5}}}
	s.addedSince(first)
	if s.CPUPerAddedPct != 0.2 || s.RSSPerAddedKB != 256 {
		t.Errorf("whole: cpu %.3f rss %.1f, want 0.2 and 256", s.CPUPerAddedPct, s.RSSPerAddedKB)
	}
	if n := s.Nodes[0]; n.CPUPerAddedPct != 0 || n.RSSPerAddedKB != 0 {
		t.Errorf("publish-only node got per-added figures %+v", n)
	}
	for _, n := range s.Nodes[1:] {
		if n.CPUPerAddedPct != 0.2 || n.RSSPerAddedKB != 256 {
			t.Errorf("edge: cpu %.3f rss %.1f, want 0.2 and 256", n.CPUPerAddedPct, n.RSSPerAddedKB)
		}
	}
}
