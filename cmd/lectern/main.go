// Command lectern is the Lectern server: live video lectures relayed from a studio to
// provincial classrooms (WebRTC SFU with WHIP/WHEP), with talk-back and replays.
//
// Run it with no arguments for embedded defaults; -help lists every setting and its
// LECTERN_* environment variable. `lectern healthcheck` asks a running server whether
// it is alive (for container health checks).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Collect garbage at 1.25× the live heap instead of 2×. Forwarding allocates
		// little (~6 KB/s per subscriber), so at a hundred subscribers a collection
		// comes every ~9 s and marks the ~35 MB heap in ~13 ms of CPU (0.15 % of a
		// core, 0.0015 % per subscriber), while RSS, which follows the heap's peak,
		// loses the headroom no longer kept: a quarter of the live heap and stacks
		// instead of half (lectern-bench -mode cost, 100 subscribers: 306-336 KB per
		// subscriber at GOGC 50, 273-275 at 25). GOGC overrides it.
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, cfg.usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "lectern: configuration problems:\n%v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := newApp(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := a.start(); err != nil {
		logger.Error("cannot start", "err", err)
		a.shutdown(context.Background())
		return 1
	}
	fmt.Fprint(stdout, a.banner())
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-a.failed:
		logger.Error("server failed", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.shutdown(shutdownCtx)
	logger.Info("stopped")
	return 0
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
