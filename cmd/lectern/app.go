package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/web"
)

// app is the wired server: every component, started and stopped in order.
type app struct {
	cfg        config
	log        *slog.Logger
	adminToken string
	generated  bool // the admin token was generated at this start

	catalog  *catalog.Catalog
	broker   *events.Broker
	registry *sfu.Registry
	edge     *peer.Edge
	http     *http.Server
	listener net.Listener

	failed chan error
	wg     sync.WaitGroup
}

func newApp(cfg config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, failed: make(chan error, 1)}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	secret, err := tokenSecret(cfg)
	if err != nil {
		return nil, err
	}
	issuer, err := auth.NewIssuer(secret)
	if err != nil {
		return nil, err
	}
	a.adminToken = cfg.AdminToken
	if a.adminToken == "" {
		if a.adminToken, err = auth.GenerateAdminToken(); err != nil {
			return nil, err
		}
		a.generated = true
	}
	if a.catalog, err = catalog.Open(cfg.DataDir); err != nil {
		return nil, err
	}
	a.broker = events.NewBroker(events.Options{Logger: log})
	a.registry = sfu.NewRegistry(sfu.RegistryConfig{
		Grace:          graceOrNone(cfg.ReconnectGrace),
		MaxSubscribers: cfg.MaxSubscribers,
		OnEvent:        a.broker.Publish,
		Logger:         log,
	})
	edgeCfg := peer.Config{
		UDPAddr:    net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.UDPPort)),
		PublicIPs:  cfg.PublicIPs,
		ICETimeout: cfg.ICETimeout,
		ICEServers: iceServers(cfg),
		Logger:     log,
	}
	if cfg.TCPPort > 0 {
		edgeCfg.TCPAddr = net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.TCPPort))
	}
	if a.edge, err = peer.New(edgeCfg); err != nil {
		return nil, err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		web.NewCollector(a.registry, a.edge.Resources))
	pages, err := web.NewPages()
	if err != nil {
		_ = a.edge.Close()
		return nil, err
	}
	handler, err := web.New(web.Config{
		Catalog: a.catalog, Registry: a.registry, WebRTC: a.edge, Events: a.broker, Tokens: issuer,
		AdminToken: a.adminToken, CORSOrigins: cfg.CORSOrigins, PublicURL: cfg.PublicURL,
		Metrics: metrics, Pages: pages, Logger: log,
	})
	if err != nil {
		_ = a.edge.Close()
		return nil, err
	}
	a.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return a, nil
}

// graceOrNone maps the configured grace (0 = end at once) to the registry's
// convention (negative = none, 0 = default).
func graceOrNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func iceServers(cfg config) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, u := range cfg.ICEServers {
		s := webrtc.ICEServer{URLs: []string{u}}
		if strings.HasPrefix(u, "turn") {
			s.Username, s.Credential = cfg.TURNUsername, cfg.TURNCredential
		}
		out = append(out, s)
	}
	return out
}

// tokenSecret returns the configured secret, or the one persisted in the data dir,
// generating it on first start so tokens survive restarts.
func tokenSecret(cfg config) ([]byte, error) {
	if cfg.TokenSecret != "" {
		return []byte(cfg.TokenSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "token-secret")
	if b, err := os.ReadFile(path); err == nil {
		if len(b) < auth.MinSecretLen {
			return nil, fmt.Errorf("%s holds %d bytes, need %d: delete it to generate a new one (this revokes all tokens)", path, len(b), auth.MinSecretLen)
		}
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read token secret: %w", err)
	}
	secret, err := auth.GenerateSecret(32)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, fmt.Errorf("persist token secret: %w", err)
	}
	return secret, nil
}

// start opens the HTTP listener and serves.
func (a *app) start() error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", a.cfg.HTTPAddr, err)
	}
	a.listener = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.failed <- err
		}
	}()
	a.log.Info("listening", "http", ln.Addr().String(), "webrtc_udp", a.edge.UDPAddr().String(), "webrtc_tcp", fmt.Sprint(a.edge.TCPAddr()))
	return nil
}

// shutdown stops in order: no new HTTP requests, event streams end, sessions close
// (every publication and its tracks), then every WebRTC connection and socket.
func (a *app) shutdown(ctx context.Context) {
	var wg sync.WaitGroup
	if a.listener != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.http.Shutdown(ctx); err != nil {
				a.log.Warn("http shutdown", "err", err)
				_ = a.http.Close()
			}
		}()
	}
	a.broker.Close() // ends SSE streams so Shutdown need not wait for them
	wg.Wait()
	a.wg.Wait()
	a.registry.CloseAll()
	if err := a.edge.Close(); err != nil {
		a.log.Warn("webrtc shutdown", "err", err)
	}
}

// banner is what a newcomer sees at start: where to go and how to begin.
func (a *app) banner() string {
	var b strings.Builder
	base := a.cfg.PublicURL
	fmt.Fprintf(&b, "\nLectern is running.\n")
	fmt.Fprintf(&b, "  HTTP (API, WHIP/WHEP, pages): %s   (listening on %s)\n", base, a.listener.Addr())
	fmt.Fprintf(&b, "  WebRTC media: UDP %s", a.edge.UDPAddr())
	if t := a.edge.TCPAddr(); t != nil {
		fmt.Fprintf(&b, ", ICE-TCP %s", t)
	}
	fmt.Fprintf(&b, "\n  Data directory: %s\n", a.cfg.DataDir)
	if a.generated {
		fmt.Fprintf(&b, "  Admin token (generated for this run; set LECTERN_ADMIN_TOKEN to keep one): %s\n", a.adminToken)
	} else {
		fmt.Fprintf(&b, "  Admin token: the one configured (LECTERN_ADMIN_TOKEN / -admin-token)\n")
	}
	fmt.Fprintf(&b, "\nCreate a session:\n  curl -s -X POST %s/api/sessions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"title\":\"Chuyển đổi số - Bài 1\"}'\n", base, a.adminToken)
	fmt.Fprintf(&b, "Then mint a trainer token for it:\n  curl -s -X POST %s/api/sessions/<id>/tokens -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"role\":\"trainer\",\"name\":\"trainer\"}'\n\n", base, a.adminToken)
	return b.String()
}
