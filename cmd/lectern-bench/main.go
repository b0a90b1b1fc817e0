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
// are lean pion peers (no interceptors unless -nack) that read into a reused buffer
// and parse only the RTP header.
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
)

// config is the tool's configuration, from flags.
type config struct {
	URL         string        // the server's base URL
	AdminToken  string        // creates the session and mints tokens
	Session     string        // an existing session id; "" creates one
	Steps       []int         // subscriber counts, ascending
	Hold        time.Duration // measurement window per step
	Settle      time.Duration // wait after the last join of a step before measuring
	ServerPID   int           // 0 finds the listener of URL's port
	Concurrency int           // joins in flight
	JoinTimeout time.Duration // a subscriber without a keyframe by then failed to join
	CacheDir    string        // where the generated clip is kept
	Clip        clip.Options  // the lecture
	NACK        bool          // subscribers send NACKs (loss is then what was never repaired)
	JSON        bool          // JSON report on stdout (table on stderr)
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
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "the server's base URL")
	fs.StringVar(&cfg.AdminToken, "admin-token", getenv("LECTERN_ADMIN_TOKEN"), "the server's admin token (default $LECTERN_ADMIN_TOKEN)")
	fs.StringVar(&cfg.Session, "session", "", "an existing session id to use; empty creates one")
	steps := fs.String("steps", "10,50,100,200", "comma-separated subscriber counts, ascending")
	fs.DurationVar(&cfg.Hold, "hold", 20*time.Second, "measurement window per step")
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
	fs.BoolVar(&cfg.JSON, "json", false, "write a JSON report to stdout (the table goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if u, err := url.Parse(cfg.URL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		problems = append(problems, fmt.Errorf("-url %q: want http://host:port", cfg.URL))
	}
	if cfg.AdminToken == "" {
		problems = append(problems, errors.New("-admin-token (or LECTERN_ADMIN_TOKEN) is required"))
	}
	var err error
	if cfg.Steps, err = parseSteps(*steps); err != nil {
		problems = append(problems, fmt.Errorf("-steps: %w", err))
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
