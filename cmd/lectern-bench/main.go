// Command lectern-bench is Lectern's load tool. Against a running server it creates
// a session, publishes a real 720p30 H.264 + Opus lecture over WHIP from a publisher
// that ignores keyframe requests (as an RTSP camera does, so joiners depend on the
// server's keyframe cache), and steps the number of WHEP subscribers (e.g. 10, 50,
// 100, 200). For each step it measures, over a hold window:
//
//   - server CPU (utime+stime from /proc/<pid>/stat ÷ wall time, % of one core), in
//     all, per subscriber over the publisher-only baseline, and per packet sent;
//   - server RSS (VmRSS, mean over the window) per subscriber over the baseline,
//     with the Go heap, stacks and goroutines behind it (from /metrics);
//   - the tool's own CPU and the machine's (the tool shares the cores);
//   - loss: gaps in each subscriber's sequence numbers (the server keeps them
//     continuous per subscriber) plus the server's queue drops, which it renumbers
//     away;
//   - join time: WHEP POST sent → first keyframe packet received, p50/p99;
//   - forwarding latency p50/p99: an access unit's first packet handed to the
//     publisher's pion track → the kernel queueing a packet with that RTP timestamp
//     on a subscriber's socket (SO_TIMESTAMPNS), for all access units and for
//     keyframes; and the same to the subscriber's read after pion ("tool lat");
//   - the server's queue drops, NACKs answered and keyframe requests (/metrics).
//
// Usage:
//
//	lectern-bench -url http://127.0.0.1:8080 -admin-token TOKEN -steps 10,50,100,200 -hold 20s [-json]
//
// The server's pid is found from the process listening on -url's port, or given
// with -server-pid. The tool runs on the same machine as the server. Subscribers
// are lean pion peers (no interceptors unless -nack or -reports) that read into a
// reused buffer and parse only the RTP header.
//
// A cluster (issue 13): -url repeated, or -urls a,b,c, names several nodes; the
// subscribers are spread over them round-robin (each WHEP POST carries placed=1, so
// a node keeps the subscriber it was given), and the publisher publishes on the
// first, or on -publish-url (the origin; subscribers then go to the -url nodes
// only, e.g. the edges). Every node's pid is found from its listener, and each step
// adds per-node figures (subscribers, CPU, RSS, loss, queue drops, forwarding
// latency) to the cluster-wide ones, which sum the nodes' CPU, RSS and counters:
//
//	lectern-bench -publish-url http://127.0.0.1:8080 -urls http://127.0.0.1:8081,http://127.0.0.1:8082 -admin-token TOKEN -steps 200
//
// Links and simulcast (issue 10). -simulcast publishes as a studio page does: three
// H.264 layers (1280x720 2.5 Mbit/s, 640x360 0.8, 320x180 0.25, a keyframe every
// second, each its own ffmpeg clip) that answer keyframe requests. -reports makes
// subscribers send RTCP receiver reports (the server's bandwidth estimate is
// loss-based and needs them) and -nack NACKs, as browsers do. -cap R puts each
// subscriber behind its own in-process UDP relay (internal/udprelay: a tbf-like
// token bucket with a -relay-queue long queue, plus -relay-loss and -relay-delay) that
// limits server -> subscriber to R bit/s; the server sees the relay's socket as the
// subscriber (a peer-reflexive ICE candidate). With -simulcast, forwarding latency
// is not measured (the layers' timestamps are not logged), and publisher_kbps and
// received_per_sent count the top layer's video only.
//
// Modes (-mode):
//
//   - steps (default): the measurements above, per step.
//   - adapt: a simulcast publisher and -subscribers (default 50) browser-like
//     subscribers (receiver reports, NACKs), each capped at -cap-high (3 Mbit/s);
//     after -high-hold every cap drops to -cap-low (700 kbit/s) for -low-hold,
//     then lifts. Per subscriber: time from the drop until on a layer that fits
//     the low cap (nominal bitrate + 100 kbit/s for audio and overhead; "paused"
//     does not count), the longest gap between video frames and the audio lost
//     while the cap is low (RTP packets, and with -red, the default, the Opus
//     frames lost after RED: those no packet carried, neither as its primary nor
//     as a redundant copy, which is what a browser's listener misses; the "0
//     audio lost" target judges these when RED was negotiated), and time from the
//     lift until back on the top layer. The layer is taken both from the server (its WHEP resource's
//     layer endpoint, GET <resource>/layer, polled every -poll) and from what the
//     subscriber receives (the picture width in each keyframe's SPS); the targets
//     use the latter. Reported as p50/p90/max with issue 10's targets (≤ 2 s,
//     ≤ 500 ms, 0, ≤ 12 s), plus the server's queue drops and NACKs and the
//     relays' drops over the low phase.
//   - cost: one step of -subscribers (default 100) browser-like subscribers of a
//     simulcast publisher (uncapped unless -cap): server CPU and RSS per
//     subscriber, targets ≤ 0.25 % of a core and ≤ 300 KB. Run it twice, against
//     the server with and without -adaptation=false, to see what the estimate and
//     layer choice cost.
//
// For example:
//
//	lectern-bench -mode adapt -url http://127.0.0.1:8080 -admin-token TOKEN -subscribers 50 [-json]
//	lectern-bench -mode cost  -url http://127.0.0.1:8080 -admin-token TOKEN -subscribers 100 -hold 30s [-json]
//	lectern-bench -simulcast -reports -nack -cap 700000 -steps 10 -hold 10s ...   # capped steps
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lectern/internal/clip"
	"lectern/internal/udprelay"
)

// config is the tool's configuration, from flags.
type config struct {
	URL         string        // the server's base URL; with several nodes, where the publisher publishes
	Nodes       []string      // the nodes subscribers play from, round-robin (URL alone for one server)
	AdminToken  string        // creates the session and mints tokens
	Session     string        // an existing session id; "" creates one
	Steps       []int         // subscriber counts, ascending
	Hold        time.Duration // measurement window per step
	BaseHold    time.Duration // measurement window of the publisher-only baseline
	Settle      time.Duration // wait after the last join of a step before measuring
	ServerPID   int           // 0 finds the listener of URL's port
	Concurrency int           // joins in flight
	JoinTimeout time.Duration // a subscriber without a keyframe by then failed to join
	CacheDir    string        // where the generated clip is kept
	Clip        clip.Options  // the lecture
	NACK        bool          // subscribers send NACKs (loss is then what was never repaired)
	RED         bool          // subscribers offer audio/red before Opus, as browsers do
	JSON        bool          // JSON report on stdout (table on stderr)

	Mode      string // modeSteps, modeAdapt or modeCost
	Simulcast bool   // the publisher sends three layers
	Reports   bool   // subscribers send RTCP receiver reports (the server's estimate needs them)
	// Cap puts each subscriber behind its own in-process relay limiting server ->
	// subscriber to Cap bit/s (0: no relay), with RelayLoss and RelayDelay.
	Cap        int64
	RelayLoss  float64
	RelayDelay time.Duration
	RelayQueue time.Duration // the relay's queue, as tbf's latency
	// The adapt and cost modes.
	Subscribers int
	CapHigh     int64         // adapt: the cap before the drop and after the lift
	CapLow      int64         // adapt: the cap during the drop
	HighHold    time.Duration // adapt: time at CapHigh before the drop
	LowHold     time.Duration // adapt: time at CapLow
	LiftTimeout time.Duration // adapt: how long to wait for the top layer after the lift
	Poll        time.Duration // adapt: how often each subscriber's layer is asked
}

// cluster reports whether the run involves several nodes (or a publish node other
// than the subscribers' one).
func (c config) cluster() bool { return len(c.Nodes) > 1 || len(c.Nodes) == 1 && c.Nodes[0] != c.URL }

// The tool's modes.
const (
	modeSteps = "steps"
	modeAdapt = "adapt"
	modeCost  = "cost"
)

// subOptions is how the configuration's subscribers behave.
func (c config) subOptions() subOptions {
	o := subOptions{nack: c.NACK, reports: c.Reports, red: c.RED}
	if c.Cap > 0 || c.RelayLoss > 0 || c.RelayDelay > 0 {
		o.link = &udprelay.Shape{RateBps: c.Cap, Loss: c.RelayLoss, Delay: c.RelayDelay, QueueDelay: c.RelayQueue}
	}
	return o
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "lectern-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	table := io.Writer(os.Stdout)
	if cfg.JSON {
		table = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := run(ctx, cfg, log, table)
	if rep != nil && cfg.JSON {
		if err := rep.writeJSON(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "lectern-bench:", err)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lectern-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("lectern-bench", flag.ContinueOnError)
	var nodes []string
	fs.Func("url", "the server's base URL (default http://127.0.0.1:8080); repeat it for a cluster's nodes: subscribers are spread over them round-robin",
		func(v string) error { nodes = append(nodes, v); return nil })
	nodeList := fs.String("urls", "", "comma-separated base URLs of a cluster's nodes, as -url repeated")
	fs.StringVar(&cfg.URL, "publish-url", "", "where the publisher publishes (a cluster's origin); default the first -url. Subscribers go to the -url nodes only")
	fs.StringVar(&cfg.AdminToken, "admin-token", getenv("LECTERN_ADMIN_TOKEN"), "the server's admin token (default $LECTERN_ADMIN_TOKEN)")
	fs.StringVar(&cfg.Session, "session", "", "an existing session id to use; empty creates one")
	steps := fs.String("steps", "10,50,100,200", "comma-separated subscriber counts, ascending")
	fs.DurationVar(&cfg.Hold, "hold", 20*time.Second, "measurement window per step")
	fs.DurationVar(&cfg.BaseHold, "baseline-hold", 10*time.Second, "measurement window of the publisher-only baseline (at most -hold); longer for small differences, e.g. a cluster origin's cost per relay")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "wait after a step's joins before measuring (longer than a GOP)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's pid; 0 finds the process listening on -url's port")
	fs.IntVar(&cfg.Concurrency, "join-concurrency", 4, "subscribers joining at the same time")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", 15*time.Second, "a subscriber without a keyframe by then failed to join")
	fs.StringVar(&cfg.CacheDir, "cache-dir", defaultCacheDir(), "where the generated clip is cached")
	fs.IntVar(&cfg.Clip.Width, "width", 1280, "clip width")
	fs.IntVar(&cfg.Clip.Height, "height", 720, "clip height")
	fs.IntVar(&cfg.Clip.FPS, "fps", 30, "clip frame rate")
	fs.IntVar(&cfg.Clip.Bitrate, "bitrate", 2_500_000, "clip video bitrate, bit/s")
	fs.DurationVar(&cfg.Clip.Duration, "clip-duration", 10*time.Second, "clip length (it loops)")
	gop := fs.Duration("keyframe-interval", 2*time.Second, "time between keyframes")
	fs.BoolVar(&cfg.NACK, "nack", false, "subscribers send NACKs as browsers do (off: every gap counts as loss)")
	fs.BoolVar(&cfg.RED, "red", true, "subscribers offer audio as browsers do, red/48000/2 (RFC 2198, Opus blocks) before Opus; audio frames lost after RED are then counted beside the RTP packets lost (false: plain Opus)")
	fs.BoolVar(&cfg.JSON, "json", false, "write a JSON report to stdout (the table goes to stderr)")
	fs.StringVar(&cfg.Mode, "mode", modeSteps, "steps: CPU/RSS/loss/latency per step; adapt: layer adaptation to a cap drop and lift; cost: steps at -subscribers with simulcast and browser-like subscribers")
	fs.BoolVar(&cfg.Simulcast, "simulcast", false, "publish three H.264 layers (720p 2.5 Mbit/s, 360p 0.8, 180p 0.25) as a studio page does")
	fs.BoolVar(&cfg.Reports, "reports", false, "subscribers send RTCP receiver reports, as browsers do (the server's bandwidth estimate needs them)")
	fs.Int64Var(&cfg.Cap, "cap", 0, "put each subscriber behind its own in-process relay limiting what it receives to this many bit/s (0: no relay)")
	fs.Float64Var(&cfg.RelayLoss, "relay-loss", 0, "random loss fraction (0..1) on each subscriber's relay, server -> subscriber")
	fs.DurationVar(&cfg.RelayDelay, "relay-delay", 0, "one-way delay on each subscriber's relay, server -> subscriber")
	fs.DurationVar(&cfg.RelayQueue, "relay-queue", 250*time.Millisecond, "the relay's queue, as the longest wait at the cap (tbf's latency); more is dropped. A home router holds about this")
	fs.IntVar(&cfg.Subscribers, "subscribers", 0, "adapt and cost modes: subscribers (default 50 in adapt, 100 in cost)")
	fs.Int64Var(&cfg.CapHigh, "cap-high", 3_000_000, "adapt: each subscriber's cap before the drop and after the lift, bit/s")
	fs.Int64Var(&cfg.CapLow, "cap-low", 700_000, "adapt: each subscriber's cap during the drop, bit/s")
	fs.DurationVar(&cfg.HighHold, "high-hold", 10*time.Second, "adapt: time at -cap-high before the drop")
	fs.DurationVar(&cfg.LowHold, "low-hold", 15*time.Second, "adapt: time at -cap-low")
	fs.DurationVar(&cfg.LiftTimeout, "lift-timeout", 30*time.Second, "adapt: how long to wait for the top layer after the lift")
	fs.DurationVar(&cfg.Poll, "poll", 100*time.Millisecond, "adapt: how often each subscriber asks the server for its layer")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	for v := range strings.SplitSeq(*nodeList, ",") {
		if v = strings.TrimSpace(v); v != "" {
			nodes = append(nodes, v)
		}
	}
	if len(nodes) == 0 {
		nodes = []string{"http://127.0.0.1:8080"}
	}
	for i, n := range nodes {
		nodes[i] = strings.TrimRight(n, "/")
		if u, err := url.Parse(n); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			problems = append(problems, fmt.Errorf("-url %q: want http://host:port", n))
		}
		if slices.Contains(nodes[:i], nodes[i]) {
			problems = append(problems, fmt.Errorf("-url %q given twice", n))
		}
	}
	cfg.Nodes = nodes
	if cfg.URL == "" {
		cfg.URL = nodes[0]
	} else if u, err := url.Parse(cfg.URL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		problems = append(problems, fmt.Errorf("-publish-url %q: want http://host:port", cfg.URL))
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.cluster() {
		if cfg.ServerPID > 0 {
			problems = append(problems, errors.New("-server-pid: with several nodes, each node's pid is found from its listener"))
		}
		if cfg.Mode == modeAdapt {
			problems = append(problems, errors.New("-mode adapt runs against one server: give one -url"))
		}
	}
	if cfg.AdminToken == "" {
		problems = append(problems, errors.New("-admin-token (or LECTERN_ADMIN_TOKEN) is required"))
	}
	var err error
	if cfg.Steps, err = parseSteps(*steps); err != nil {
		problems = append(problems, fmt.Errorf("-steps: %w", err))
	}
	switch cfg.Mode {
	case modeSteps:
	case modeAdapt:
		cfg.Simulcast, cfg.Reports, cfg.NACK = true, true, true
		if cfg.Subscribers == 0 {
			cfg.Subscribers = 50
		}
		if cfg.CapLow <= 0 || cfg.CapHigh <= cfg.CapLow {
			problems = append(problems, fmt.Errorf("-cap-low %d, -cap-high %d: want 0 < low < high", cfg.CapLow, cfg.CapHigh))
		}
		if cfg.Poll < 10*time.Millisecond {
			problems = append(problems, fmt.Errorf("-poll %v: at least 10ms", cfg.Poll))
		}
	case modeCost:
		cfg.Simulcast, cfg.Reports, cfg.NACK = true, true, true
		if cfg.Subscribers == 0 {
			cfg.Subscribers = 100
		}
		cfg.Steps = []int{cfg.Subscribers}
	default:
		problems = append(problems, fmt.Errorf("-mode %q: want steps, adapt or cost", cfg.Mode))
	}
	if cfg.Subscribers < 0 {
		problems = append(problems, fmt.Errorf("-subscribers %d: want a positive count", cfg.Subscribers))
	}
	if cfg.Cap < 0 || cfg.RelayLoss < 0 || cfg.RelayLoss > 1 || cfg.RelayDelay < 0 || cfg.RelayQueue < 0 {
		problems = append(problems, fmt.Errorf("-cap %d, -relay-loss %g, -relay-delay %v: want a rate >= 0, a fraction 0..1, a delay >= 0", cfg.Cap, cfg.RelayLoss, cfg.RelayDelay))
	}
	if cfg.Hold < time.Second {
		problems = append(problems, fmt.Errorf("-hold %v: at least 1s", cfg.Hold))
	}
	if cfg.Concurrency < 1 {
		problems = append(problems, fmt.Errorf("-join-concurrency %d: at least 1", cfg.Concurrency))
	}
	if cfg.Clip.FPS > 0 {
		cfg.Clip.GOP = max(1, int(gop.Seconds()*float64(cfg.Clip.FPS)+0.5))
	}
	return cfg, errors.Join(problems...)
}

// parseSteps reads "10,50,100" into ascending positive counts.
func parseSteps(s string) ([]int, error) {
	var steps []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		steps = append(steps, n)
	}
	if !slices.IsSorted(steps) {
		return nil, fmt.Errorf("%q: steps must ascend", s)
	}
	return steps, nil
}

func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "lectern-bench")
	}
	return filepath.Join(os.TempDir(), "lectern-bench")
}
