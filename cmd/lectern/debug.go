package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves Go's profiler on its own listener (-debug-addr), never on the
// public HTTP address: profiles show memory and code paths, and a CPU profile
// costs the server while it runs. It stops with the server.
func (a *app) startDebug() error {
	if a.cfg.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.DebugAddr)
	if err != nil {
		return fmt.Errorf("debug listen %s: %w", a.cfg.DebugAddr, err)
	}
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("debug listener ended", "err", err)
		}
	}()
	a.cleanup.push("debug", func(context.Context) error {
		err := srv.Close()
		<-done
		return err
	})
	a.log.Info("profiler listening (no authentication: keep it private)", "debug", ln.Addr().String())
	return nil
}

// debugHandler serves Go's profiler under /debug/pprof/ and nothing else.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
