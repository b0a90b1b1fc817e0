package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"lectern/internal/clip"
)

// step is what one window measured. CPU is in % of one core.
type step struct {
	Subscribers int     `json:"subscribers"`
	Seconds     float64 `json:"seconds"`

	ServerCPU           float64 `json:"server_cpu_pct"`
	CPUPerSubPct        float64 `json:"server_cpu_per_subscriber_pct"` // (step − baseline) ÷ N
	ServerUsPerPacket   float64 `json:"server_cpu_us_per_packet_out"`  // all server CPU ÷ packets sent
	MarginalUsPerPacket float64 `json:"marginal_cpu_us_per_packet_out"`
	RSSMB               float64 `json:"server_rss_mb"` // mean over the window
	RSSPerSubKB         float64 `json:"server_rss_per_subscriber_kb"`
	// Per subscriber added since the run's first step (see addedSince).
	CPUPerAddedPct float64 `json:"server_cpu_per_added_subscriber_pct,omitempty"`
	RSSPerAddedKB  float64 `json:"server_rss_per_added_subscriber_kb,omitempty"`
	// From the server's Go runtime at the window's end, vs the baseline.
	HeapPerSubKB float64 `json:"server_heap_and_stacks_per_subscriber_kb"`
	// The heap the last GC found live (liveHeap) and the stacks: what RSS and the
	// in-use heap grow by between GC cycles (GOGC) left out, the steadier figure.
	LivePerSubKB     float64 `json:"server_live_heap_and_stacks_per_subscriber_kb"`
	GoroutinesPerSub float64 `json:"server_goroutines_per_subscriber"`

	ToolCPU     float64 `json:"tool_cpu_pct"`
	MachineBusy float64 `json:"machine_busy_pct"` // all processes, % of all cores
	LoadAvg     string  `json:"loadavg"`
	UDPBufDrops uint64  `json:"udp_rcvbuf_errors"` // machine-wide kernel drops in the window

	// LossPct counts sequence gaps at the subscribers and the server's queue drops
	// (which it renumbers away) against what the subscribers should have received.
	LossPct     float64 `json:"loss_pct"`
	SeqGaps     int64   `json:"sequence_gaps"`
	WorstGapPct float64 `json:"worst_subscriber_gap_pct"`
	// RecvPerSent is packets received ÷ (packets published × N) over the window, a
	// cross-check (≈ 1 ± an access unit in flight at the window's edges).
	RecvPerSent   float64 `json:"received_per_sent"`
	PublisherKbps float64 `json:"publisher_kbps"`

	Joins      int     `json:"joins"`
	JoinFailed int     `json:"join_failed"`
	JoinP50ms  float64 `json:"join_p50_ms"`
	JoinP99ms  float64 `json:"join_p99_ms"`
	// POST → first video packet of any kind, and the server's counters while the
	// step's subscribers joined (queue drops there mean a fast start overflowed).
	FirstMediaP50ms float64        `json:"first_media_p50_ms"`
	FirstMediaP99ms float64        `json:"first_media_p99_ms"`
	JoinServer      serverCounters `json:"join_server_counters"`
	JoinUDPBufDrops uint64         `json:"join_udp_rcvbuf_errors"`
	// JoinNoKeyFirst counts joins whose first video packet was not a keyframe's:
	// the fast start's head was lost, or there was no fast start.
	JoinNoKeyFirst int `json:"joins_first_packet_not_keyframe"`

	// Forwarding latency: an access unit's first packet handed to the publisher's
	// pion track → the kernel queueing a packet with its timestamp on the
	// subscriber's socket (SO_TIMESTAMPNS), for every access unit and for
	// keyframes (30-60 packets each, sent to every subscriber in turn).
	LatencyP50ms  float64 `json:"latency_p50_ms"`
	LatencyP99ms  float64 `json:"latency_p99_ms"`
	LatencyN      uint64  `json:"latency_samples"`
	KeyLatencyP50 float64 `json:"keyframe_latency_p50_ms"`
	KeyLatencyP99 float64 `json:"keyframe_latency_p99_ms"`
	// The same up to the subscriber's read after pion: adds the tool's own
	// receive path, which shares the two cores.
	AppLatencyP50 float64 `json:"app_latency_p50_ms"`
	AppLatencyP99 float64 `json:"app_latency_p99_ms"`
	AppKeyP99     float64 `json:"app_keyframe_latency_p99_ms"`
	Unmatched     uint64  `json:"unmatched_access_units"`

	Server serverCounters `json:"server_counters"`

	// Nodes are the figures of each node of a cluster run (-url repeated); the
	// fields above then cover the whole cluster: CPU, RSS and counters summed.
	Nodes []nodeStep `json:"nodes,omitempty"`
}

// nodeStep is one node's part of a step.
type nodeStep struct {
	URL          string  `json:"url"`
	PID          string  `json:"pid"`
	Subscribes   bool    `json:"subscribers_play_here"` // false: the publish node only
	Subscribers  int     `json:"subscribers"`
	ServerCPU    float64 `json:"server_cpu_pct"`
	CPUPerSubPct float64 `json:"server_cpu_per_subscriber_pct"` // (step − this node's baseline) ÷ its subscribers
	RSSMB        float64 `json:"server_rss_mb"`
	RSSPerSubKB  float64 `json:"server_rss_per_subscriber_kb"`
	// Per subscriber added since the run's first step (see addedSince): the
	// node's ingest (a publisher, or an edge's relay, which starts with the
	// node's first subscriber) is then in the reference on every node alike.
	CPUPerAddedPct float64        `json:"server_cpu_per_added_subscriber_pct,omitempty"`
	RSSPerAddedKB  float64        `json:"server_rss_per_added_subscriber_kb,omitempty"`
	LossPct        float64        `json:"loss_pct"`
	SeqGaps        int64          `json:"sequence_gaps"`
	LatencyP50ms   float64        `json:"latency_p50_ms"`
	LatencyP99ms   float64        `json:"latency_p99_ms"`
	LatencyN       uint64         `json:"latency_samples"`
	Server         serverCounters `json:"server_counters"`
}

// target is one of the goals, checked at the step nearest 100 subscribers.
type target struct {
	Name  string  `json:"name"`
	Limit string  `json:"limit"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
}

// report is the whole run.
type report struct {
	Server                  int          `json:"server_pid"`
	Mode                    string       `json:"mode"`
	Simulcast               bool         `json:"simulcast"`
	Session                 string       `json:"session"`
	Clip                    clip.Options `json:"clip"`
	Hold                    string       `json:"hold"`
	Baseline                step         `json:"baseline"`
	Steps                   []step       `json:"steps"`
	KeyframeRequestsIgnored int32        `json:"keyframe_requests_ignored"`
	TimestampOffsets        uint64       `json:"subscribers_with_timestamp_offset"`
	TargetsAt               int          `json:"targets_at_subscribers"`
	Targets                 []target     `json:"targets"`
}

// evaluate checks the targets (2.5 Mbit/s, 100 subscribers) at the step
// nearest 100 subscribers.
func (r *report) evaluate() {
	if len(r.Steps) == 0 {
		return
	}
	at := r.Steps[0]
	for _, s := range r.Steps {
		if abs(s.Subscribers-100) < abs(at.Subscribers-100) {
			at = s
		}
	}
	r.TargetsAt = at.Subscribers
	// Simulcast with the bandwidth estimate on (the cost mode) may cost a little more
	// (issue 10): 0.25 % and 300 KB.
	cpu, rss := 0.2, 250.0
	if r.Mode == modeCost {
		cpu, rss = 0.25, 300
	}
	r.Targets = []target{
		{"server CPU per subscriber (% of one core)", fmt.Sprintf("≤ %g", cpu), at.CPUPerSubPct, at.CPUPerSubPct <= cpu},
		{"server RSS per subscriber (KB)", fmt.Sprintf("≤ %g", rss), at.RSSPerSubKB, at.RSSPerSubKB <= rss},
		{"loss (%)", "0", at.LossPct, at.LossPct <= 0 && at.JoinFailed == 0},
		{"forwarding latency p99 (ms)", "≤ 10", at.LatencyP99ms, at.LatencyP99ms <= 10 && at.LatencyN > 0},
		{"join p50, POST → first keyframe (ms)", "≤ 150", at.JoinP50ms, at.JoinP50ms <= 150 && at.Joins > 0},
	}
	if r.Simulcast { // the layers' send times are not logged: no latency samples
		r.Targets = slices.DeleteFunc(r.Targets, func(t target) bool { return strings.HasPrefix(t.Name, "forwarding latency") })
	}
}

func abs(n int) int { return max(n, -n) }

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

var columns = []string{
	"subs", "srv cpu%", "cpu/sub%", "µs/pkt", "rss MB", "rss/sub KB", "heap/sub KB", "live/sub KB", "gor/sub", "tool cpu%", "busy%",
	"loss%", "gaps", "rcv/sent", "join p50/p99 ms", "1st pkt p50/p99", "no-key 1st", "join drops", "join udp drops", "lat p50/p99 ms", "key lat p50/p99", "tool lat p50/p99", "drops", "nacks", "kf req", "udp drops", "load",
}

func printHeader(w io.Writer) { printCells(w, columns) }

// printCells prints one table line, each cell right-aligned to its column's width.
func printCells(w io.Writer, cells []string) {
	var b strings.Builder
	for i, c := range cells {
		width := utf8.RuneCountInString(columns[i])
		if pad := width - utf8.RuneCountInString(c); pad > 0 {
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString(" |")
			b.WriteString(" ")
		}
	}
	fmt.Fprintln(w, b.String())
}

// printRow prints one step. The baseline (no subscribers) leaves the per-subscriber
// columns empty.
func printRow(w io.Writer, s step) {
	f := func(format string, v ...any) string { return fmt.Sprintf(format, v...) }
	perSub := func(format string, v ...any) string {
		if s.Subscribers == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v...)
	}
	printCells(w, []string{
		f("%d", s.Subscribers), f("%.1f", s.ServerCPU), perSub("%.3f", s.CPUPerSubPct), perSub("%.1f", s.ServerUsPerPacket),
		f("%.1f", s.RSSMB), perSub("%.0f", s.RSSPerSubKB), perSub("%.0f", s.HeapPerSubKB), perSub("%.0f", s.LivePerSubKB), perSub("%.1f", s.GoroutinesPerSub), f("%.1f", s.ToolCPU), f("%.0f", s.MachineBusy),
		perSub("%.3f", s.LossPct), perSub("%d", s.SeqGaps), perSub("%.4f", s.RecvPerSent),
		perSub("%.0f/%.0f", s.JoinP50ms, s.JoinP99ms), perSub("%.0f/%.0f", s.FirstMediaP50ms, s.FirstMediaP99ms), perSub("%d", s.JoinNoKeyFirst), perSub("%d", s.JoinUDPBufDrops),
		perSub("%.0f", s.JoinServer.QueueDrops), perSub("%.2f/%.2f", s.LatencyP50ms, s.LatencyP99ms), perSub("%.1f/%.1f", s.KeyLatencyP50, s.KeyLatencyP99),
		perSub("%.1f/%.1f", s.AppLatencyP50, s.AppLatencyP99),
		f("%.0f", s.Server.QueueDrops), f("%.0f", s.Server.NACKsAnswered), f("%.0f", s.Server.KeyframeRequests),
		f("%d", s.UDPBufDrops), s.LoadAvg,
	})
}

// printNodes prints a cluster step's per-node lines under its row.
func printNodes(w io.Writer, s step) {
	for _, n := range s.Nodes {
		role := "subscribers"
		if !n.Subscribes {
			role = "publish only"
		}
		added := ""
		if n.RSSPerAddedKB != 0 || n.CPUPerAddedPct != 0 {
			added = fmt.Sprintf(" [per added sub: cpu %.3f%%, rss %.0f KB]", n.CPUPerAddedPct, n.RSSPerAddedKB)
		}
		fmt.Fprintf(w, "    node %s (pid %s, %s): %d subs, cpu %.1f%% (%.3f%%/sub), rss %.1f MB (%.0f KB/sub)%s, loss %.3f%%, gaps %d, drops %.0f, nacks %.0f, lat p50/p99 %.2f/%.2f ms\n",
			n.URL, n.PID, role, n.Subscribers, n.ServerCPU, n.CPUPerSubPct, n.RSSMB, n.RSSPerSubKB, added, n.LossPct, n.SeqGaps,
			n.Server.QueueDrops, n.Server.NACKsAnswered, n.LatencyP50ms, n.LatencyP99ms)
	}
}

// addedSince sets s's per-added-subscriber figures against first, an earlier
// step: (s − first) ÷ the subscribers added, for the whole server and each node.
// The per-subscriber figures proper are against the publisher-only baseline, which
// on a single node already holds the ingest (the publisher's track and cache) but
// on a cluster's edge holds nothing: its relay from the origin starts with its
// first subscriber and would be charged to its subscribers.
func (s *step) addedSince(first step) {
	if d := s.Subscribers - first.Subscribers; d > 0 {
		s.CPUPerAddedPct = (s.ServerCPU - first.ServerCPU) / float64(d)
		s.RSSPerAddedKB = (s.RSSMB - first.RSSMB) * 1024 / float64(d)
	}
	for i := range s.Nodes {
		if i >= len(first.Nodes) {
			break
		}
		n, f := &s.Nodes[i], first.Nodes[i]
		if d := n.Subscribers - f.Subscribers; d > 0 && f.Subscribers > 0 {
			n.CPUPerAddedPct = (n.ServerCPU - f.ServerCPU) / float64(d)
			n.RSSPerAddedKB = (n.RSSMB - f.RSSMB) * 1024 / float64(d)
		}
	}
}

func printSummary(w io.Writer, r *report) {
	if r.Simulcast {
		fmt.Fprintf(w, "\nsimulcast: 1280x720 2.5 Mbit/s, 640x360 0.8, 320x180 0.25, 30 fps, a keyframe a second; the publisher answered %d keyframe requests; latency not measured\n",
			r.KeyframeRequestsIgnored)
	} else {
		fmt.Fprintf(w, "\nclip %dx%d %d fps, video %d bit/s, keyframe every %d frames; publisher ignored %d keyframe requests; %d subscribers saw shifted timestamps\n",
			r.Clip.Width, r.Clip.Height, r.Clip.FPS, r.Clip.Bitrate, r.Clip.GOP, r.KeyframeRequestsIgnored, r.TimestampOffsets)
	}
	fmt.Fprintf(w, "baseline (publisher only): server %.1f%% of a core, RSS %.1f MB\n", r.Baseline.ServerCPU, r.Baseline.RSSMB)
	if len(r.Steps) > 1 {
		first := r.Steps[0]
		fmt.Fprintf(w, "per subscriber added since the first step (%d subscribers; the ingest, e.g. an edge's relay, is in it):\n", first.Subscribers)
		for _, s := range r.Steps[1:] {
			fmt.Fprintf(w, "  %4d subscribers: cpu %.3f%% of a core, rss %.0f KB\n", s.Subscribers, s.CPUPerAddedPct, s.RSSPerAddedKB)
		}
	}
	if len(r.Targets) == 0 {
		return
	}
	fmt.Fprintf(w, "targets at %d subscribers:\n", r.TargetsAt)
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-40s %8.3f  (target %s)  %s\n", t.Name, t.Value, t.Limit, verdict)
	}
}
