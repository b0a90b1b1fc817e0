package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/floor"
	"lectern/programme"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
	"lectern/storage"
	"lectern/transcode"
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
	rtsp     *rtsp.Server       // nil when RTSP is off
	sources  *rtsp.Sources      // RTSP pull sources (IP cameras)
	store    mediaStore         // nil when recording is off
	recorder *recorder.Recorder // nil when recording is off

	// programme makes every session's programme (the trainer mixed with the floor);
	// transcoder gives AAC and G.711 audio an Opus variant (issue 12).
	programme  *programme.Manager
	transcoder *transcode.Transcoder

	http     *http.Server
	web      *web.Server // set before anything is served; its Prepare serves RTSP readers on a cluster edge
	listener net.Listener
	https    *httpsFront // tls.go; nil when HTTPS is off

	failed    chan error
	wg        sync.WaitGroup
	cleanup   cleanup     // how to close what is open, newest last (cleanup.go)
	serving   atomic.Bool // every listener is up, and shutdown has not begun
	readiness readiness   // /readyz (ready.go)
	conns     *connCap    // HTTP connections per client address (conncap.go)

	cl *clusterNode // app_cluster.go: the parts of a cluster node; nil for a single node
}

func newApp(cfg config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, failed: make(chan error, 1)}
	if err := a.open(); err != nil {
		// Whichever step failed, what the steps before it opened is closed, newest
		// first, as shutdown would.
		a.cleanup.run(context.Background(), log)
		return nil, err
	}
	return a, nil
}

// testHookNewApp, when set by a test, runs as the last step of newApp; an error
// from it fails newApp as a failing step would.
var testHookNewApp func(*app) error

// open builds every component. Each one, once open, pushes how to close it onto
// a.cleanup; the order here is chosen so that closing newest first is also the
// order of a clean shutdown: pull sources stop, sessions end (recordings write
// their last segment), the RTSP server closes, the recorder stores what it holds
// and the store closes, then the WebRTC sockets. start pushes the HTTP server
// last, so it stops first.
func (a *app) open() error {
	cfg, log := a.cfg, a.log
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	secret, err := tokenSecret(cfg)
	if err != nil {
		return err
	}
	issuer, err := auth.NewIssuer(secret)
	if err != nil {
		return err
	}
	a.adminToken = cfg.AdminToken
	if a.adminToken == "" {
		if a.adminToken, err = auth.GenerateAdminToken(); err != nil {
			return err
		}
		a.generated = true
	}
	if a.catalog, err = a.openCatalog(); err != nil { // app_cluster.go: the file, or Redis for a cluster
		return err
	}
	// Device access codes (short RTSP passwords) are kept in the catalogue; every
	// edge gets this issuer, so a code works over HTTP and RTSP alike.
	issuer = issuer.WithCodes(web.CatalogCodes(a.catalog))
	a.broker = events.NewBroker(events.Options{Logger: log})
	a.cleanup.push("event streams", func(context.Context) error { a.broker.Close(); return nil })
	edgeCfg := peer.Config{
		UDPAddr:    net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.UDPPort)),
		PublicIPs:  cfg.PublicIPs,
		ICETimeout: cfg.ICETimeout,
		ICEServers: iceServers(cfg),
		Logger:     log,
		// Off only for comparisons (the load tool runs both).
		DisableAdaptation: !cfg.Adaptation,
	}
	if cfg.TCPPort > 0 {
		edgeCfg.TCPAddr = net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.TCPPort))
	}
	if a.edge, err = peer.New(edgeCfg); err != nil {
		return err
	}
	a.cleanup.push("webrtc", func(context.Context) error { return a.edge.Close() })
	if cfg.Record {
		if err := a.openRecorder(); err != nil {
			return err
		}
	}
	// One failed-authentication limiter for HTTP and RTSP: a guesser gets no
	// fresh tries by switching protocol.
	authFailures := auth.NewFailureLimiter(auth.DefaultFailureBurst, auth.DefaultFailureEvery)
	if cfg.RTSPAddr != "off" {
		rc := rtsp.Config{Address: cfg.RTSPAddr, ServerCert: cfg.RTSPCert, ServerKey: cfg.RTSPKey,
			Sessions: a.liveSession, Tokens: issuer, AdminToken: a.adminToken, AuthFailures: authFailures, Logger: log,
			Prepare: a.prepareRead, Programme: true}
		if cfg.RTSPUDPRTPPort > 0 {
			rc.UDPRTPAddress = ":" + strconv.Itoa(cfg.RTSPUDPRTPPort)
			rc.UDPRTCPAddress = ":" + strconv.Itoa(cfg.RTSPUDPRTCPPort)
		}
		if a.rtsp, err = rtsp.NewServer(rc); err != nil {
			return fmt.Errorf("rtsp: %w", err)
		}
		a.cleanup.push("rtsp", func(context.Context) error { return a.rtsp.Close() })
	}
	// Made before the registry, whose events attach them; closed before it (pushed
	// after it): each programme ends its publication and the transcodings stop,
	// then the sessions close and the recordings write their last segments.
	a.programme = programme.New(programme.Config{VideoMode: a.programmeVideo, Logger: log})
	a.transcoder = transcode.New(transcode.Config{Logger: log})
	a.registry = sfu.NewRegistry(sfu.RegistryConfig{
		Grace:          graceOrNone(cfg.ReconnectGrace),
		MaxSubscribers: cfg.MaxSubscribers,
		OnEvent:        a.onEvent,
		Logger:         log,
	})
	a.cleanup.push("sessions", func(context.Context) error { a.registry.CloseAll(); return nil })
	a.cleanup.push("transcoder", func(context.Context) error { return a.transcoder.Close() })
	a.cleanup.push("programme", func(context.Context) error { return a.programme.Close() })
	a.sources = rtsp.NewSources(rtsp.SourcesConfig{Sessions: a.liveSession, Logger: log,
		Allow: cfg.rtspSourceAllow(), TrainersMayAdd: cfg.RTSPSourceTrainers})
	a.cleanup.push("rtsp sources", func(context.Context) error { a.sources.Close(); return nil })

	a.conns = newConnCap(cfg.MaxConnsPerIP, log)
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		web.NewCollector(a.registry, a.edge.Resources).WithAdaptation(a.edge.AdaptationStats), a.conns.refused,
		a.programme.Collector(), a.transcoder.Collector())
	if a.rtsp != nil {
		metrics.MustRegister(a.rtsp.Collector()) // the loss RTSP readers report
	}
	a.openRelays(issuer, metrics) // app_cluster.go; nothing for a single node
	turnServers, err := a.openTURN(metrics)
	if err != nil {
		return err
	}
	var replays *web.ReplayConfig
	if a.recorder != nil {
		metrics.MustRegister(a.recorder.Collector())
		replays = &web.ReplayConfig{Recorder: a.recorder, Store: a.store, Redirect: cfg.ReplayRedirect,
			MaxDownloadsPerAddr: cfg.ReplayDownloadsPerIP}
		if cfg.ReplayDownloadsPerIP == 0 {
			replays.MaxDownloadsPerAddr = -1 // the setting's 0 is "no limit"; the field's is "the default"
		}
		if cfg.ReplayCacheMB > 0 {
			replays.Cache = web.NewReplayCache(int64(cfg.ReplayCacheMB)<<20, web.DefaultMaxCachedObject)
			metrics.MustRegister(replays.Cache)
		}
	}
	var pageOpts []web.PagesOption
	if replays != nil && replays.Redirect {
		// The replay pages' hls.js follows segment redirects to the store: their
		// Content-Security-Policy must allow its origin.
		pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
		origin, err := web.PresignedOrigin(pctx, a.store)
		pcancel()
		if err != nil {
			return err
		}
		if origin != "" {
			pageOpts = append(pageOpts, web.WithMediaOrigin(origin))
		}
	}
	pages, err := web.NewPages(pageOpts...)
	if err != nil {
		return err
	}
	handler, err := web.New(web.Config{
		Catalog: a.catalog, Registry: a.registry, WebRTC: a.edge, Events: a.broker, Tokens: issuer,
		AdminToken: a.adminToken, CORSOrigins: cfg.CORSOrigins, PublicURL: cfg.PublicURL,
		RTSPURL: web.RTSPBaseURL(cfg.PublicURL, cfg.RTSPAddr, cfg.RTSPCert != ""),
		Metrics: metrics, Replays: replays, Sources: a.sources, Pages: pages, Logger: log, AuthFailures: authFailures,
		Ready: a.ready, RequestTimeout: cfg.HTTPRequestTimeout, LobbyPublic: cfg.LobbyPublic,
		EventStreamsPerToken: noLimitIfZero(cfg.EventsPerToken), EventStreamsPerAddress: noLimitIfZero(cfg.EventsPerIP),
		WHEPConnectingPerToken: noLimitIfZero(cfg.WHEPConnectingPerToken), WHEPConnectingPerAddress: noLimitIfZero(cfg.WHEPConnectingPerIP),
		ViewerConnections: cfg.MaxViewerConnections, TURNServers: turnServers,
		Cluster: a.cl.cluster(), Relays: a.cl.manager(), RelayOrigin: a.cl.originHandler(), NewFloor: a.cl.newFloor(), NodeLoad: a.cl.nodeLoad(),
		Programme: true, OnFloor: a.onFloor,
	})
	if err != nil {
		return err
	}
	a.web = handler
	if c, ok := any(handler).(io.Closer); ok { // the cluster's request paths: closed before the relays
		a.cleanup.push("cluster requests", func(context.Context) error { return c.Close() })
	}
	// No ReadTimeout or WriteTimeout here: they would cut event streams and long
	// downloads. Ordinary requests get per-request deadlines in the handler
	// (web/deadlines.go); a connection between requests is bounded by IdleTimeout.
	a.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: cfg.HTTPIdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if testHookNewApp != nil {
		return testHookNewApp(a)
	}
	return nil
}

// noLimitIfZero turns a setting's 0 (no limit) into web.Config's (negative; there 0
// takes the default).
func noLimitIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// mediaStore is the recordings' object store: storage.Dir or storage.S3.
type mediaStore interface {
	storage.Store
	Close() error
}

// openRecorder opens the object store (S3 when configured, else <data-dir>/store)
// and the recorder, whose spool is <data-dir>/spool. Leftovers of a previous run
// are uploaded and interrupted recordings finalised in the background.
func (a *app) openRecorder() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if a.cfg.S3Endpoint == "" {
		a.store, err = storage.NewDir(filepath.Join(a.cfg.DataDir, "store"))
	} else {
		u, _ := url.Parse(a.cfg.S3Endpoint) // checked by the config
		a.store, err = storage.NewS3(ctx, storage.S3Config{
			Endpoint: u.Host, UseTLS: u.Scheme == "https", Bucket: a.cfg.S3Bucket,
			AccessKey: a.cfg.S3AccessKey, SecretKey: a.cfg.S3SecretKey, Region: a.cfg.S3Region,
			PathStyle: a.cfg.S3PathStyle, CreateBucket: a.cfg.S3CreateBucket, Prefix: a.cfg.S3Prefix,
		})
	}
	if err != nil {
		return fmt.Errorf("recording store: %w", err)
	}
	a.cleanup.push("recording store", func(context.Context) error { return a.store.Close() })
	a.recorder, err = recorder.New(ctx, recorder.Config{
		Store:           a.store,
		SpoolDir:        filepath.Join(a.cfg.DataDir, "spool"),
		MaxSpoolBytes:   int64(a.cfg.SpoolMaxMB) << 20,
		SegmentDuration: a.cfg.SegmentDuration,
		Title: func(session string) string {
			s, _ := a.catalog.Get(session)
			return s.Title
		},
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	// Closing ends the recordings: their last segments are stored within the
	// shutdown's deadline; what is left waits in the spool for the next start.
	a.cleanup.push("recorder", a.recorder.Close)
	return nil
}

// onEvent forwards the registry's events to the SSE broker and attaches the
// recorder to a session when its first publication appears (the recorder is an
// ordinary subscriber: the sfu does not know it). It runs without sfu locks held.
func (a *app) onEvent(session, typ string, data any) {
	if a.cl.sessionEvent(a.registry, session, typ, data) { // app_cluster.go: what a cluster node's pages see
		a.broker.Publish(session, typ, data)
	}
	if typ != sfu.EventPublicationAdded && !a.cl.trainerHereAgain(typ, data) {
		return
	}
	s, ok := a.registry.Lookup(session)
	if !ok {
		return
	}
	if a.recorder != nil {
		a.recorder.Attach(s)
	}
	// The programme appears with the trainer (Attach does nothing before), and
	// the transcoder looks at every publication's audio. Both are idempotent.
	if a.cl.programmeHere(s) { // app_cluster.go: a cluster edge relays the origin's programme instead
		a.programme.Attach(s)
	}
	a.transcoder.Attach(s)
}

// onFloor tells the programme who holds the floor: the publications of the
// classrooms with the floor, in grant order, mixed with the trainer.
func (a *app) onFloor(e floor.Event) {
	if e.Change != floor.Granted && e.Change != floor.Revoked {
		return
	}
	pubs := make([]string, 0, len(e.Speakers))
	for _, sp := range e.Speakers {
		pubs = append(pubs, sp.Publication)
	}
	a.programme.SetSpeakers(e.Session, pubs)
}

// programmeVideo is the session's programme_video setting (trainer or speaker),
// read at each switch of the programme's picture.
func (a *app) programmeVideo(session string) string {
	c, err := a.catalog.Get(session)
	if err != nil {
		return programme.VideoTrainer
	}
	return c.VideoMode()
}

// prepareRead brings a publication another cluster node sources here before an
// RTSP reader's plan (web.Server.Prepare); nothing on a single node.
func (a *app) prepareRead(ctx context.Context, session, publication string) error {
	if a.web == nil { // not serving yet
		return nil
	}
	return a.web.Prepare(ctx, session, publication)
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
	return persistedSecret(cfg.TokenSecret, cfg.DataDir, "token secret", auth.MinSecretLen, "this revokes all tokens")
}

// liveSession resolves a session id for the RTSP edge: only sessions of the
// catalogue exist.
func (a *app) liveSession(id string) (*sfu.Session, error) {
	if _, err := a.catalog.Get(id); err != nil {
		return nil, fmt.Errorf("%w: %v", sfu.ErrNoSession, err)
	}
	return a.registry.Session(id), nil
}

// startSources brings in the RTSP sources configured at start. A source whose
// session does not exist is reported and skipped.
func (a *app) startSources() {
	for _, v := range a.cfg.RTSPSources {
		session, name, as, rawURL, _ := parseRTSPSource(v) // checked by the config
		if _, err := a.sources.Add(session, rtsp.SourceSpec{URL: rawURL, Name: name, As: as}); err != nil {
			a.log.Warn("configured RTSP source not started", "session", session, "name", name, "err", err)
		}
	}
}

// start opens the HTTP and RTSP listeners and serves.
func (a *app) start() error {
	if a.rtsp != nil {
		if err := a.rtsp.Start(); err != nil {
			return fmt.Errorf("rtsp listen %s: %w", a.cfg.RTSPAddr, err)
		}
	}
	a.startSources()
	if err := a.startDebug(); err != nil {
		return err
	}
	ln, err := a.listenHTTP() // tls.go: plain HTTP, or HTTPS and the redirect server
	if err != nil {
		return err
	}
	a.listener = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.failed <- err
		}
	}()
	a.cleanup.push("http", a.stopHTTP)
	a.serving.Store(true)
	a.log.Info("listening", "http", ln.Addr().String(), "webrtc_udp", a.edge.UDPAddr().String(), "webrtc_tcp", fmt.Sprint(a.edge.TCPAddr()))
	return nil
}

// shutdown closes everything that was opened, in the reverse order: no new HTTP
// requests and event streams end, pull sources stop, sessions close (every
// publication and its tracks), the RTSP server, the recorder and its store, then
// every WebRTC connection and socket. It also undoes a start that failed halfway.
func (a *app) shutdown(ctx context.Context) { a.cleanup.run(ctx, a.log) }

// stopHTTP stops serving: no new requests; those running finish within ctx, else
// their connections are closed.
func (a *app) stopHTTP(ctx context.Context) error {
	a.serving.Store(false) // /readyz: not ready while draining
	done := make(chan error, 1)
	go func() {
		err := a.http.Shutdown(ctx)
		if err != nil {
			_ = a.http.Close()
		}
		done <- err
	}()
	if a.https != nil {
		a.https.shutdown(ctx) // the redirect server; before a.wg.Wait, which waits for it
	}
	a.broker.Close() // ends SSE streams so Shutdown need not wait for them
	err := <-done
	a.wg.Wait()
	return err
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
	if a.rtsp != nil {
		fmt.Fprintf(&b, "\n  RTSP (encoders, decoders, VLC): rtsp://<host>%s/<session>", a.rtsp.Addr()[strings.LastIndex(a.rtsp.Addr(), ":"):])
	}
	fmt.Fprintf(&b, "\n  Data directory: %s\n", a.cfg.DataDir)
	if a.cl != nil {
		redis := "reachable"
		if !a.cl.c.Healthy() {
			redis = "not reachable yet (retrying; media here works, joins across nodes wait)"
		}
		fmt.Fprintf(&b, "  Cluster node %s, region %s; Redis %s; GET /api/nodes lists the nodes\n", a.cfg.NodeID, a.cfg.Region, redis)
	}
	// The banner goes to stdout, so to journald and docker logs: a configured
	// token is a standing credential and is never printed; the curl lines then
	// let the shell expand it. A generated one lives only as long as this run and
	// this is the only place it can be read.
	bearer := `"Authorization: Bearer $LECTERN_ADMIN_TOKEN"`
	if a.generated {
		fmt.Fprintf(&b, "  Admin token (generated for this run; set LECTERN_ADMIN_TOKEN to keep one): %s\n", a.adminToken)
		bearer = "'Authorization: Bearer " + a.adminToken + "'"
	} else {
		fmt.Fprintf(&b, "  Admin token: the one configured (LECTERN_ADMIN_TOKEN / -admin-token); not shown\n")
	}
	fmt.Fprintf(&b, "\nCreate a session:\n  curl -s -X POST %s/api/sessions -H %s -H 'Content-Type: application/json' -d '{\"title\":\"Chuyển đổi số - Bài 1\"}'\n", base, bearer)
	fmt.Fprintf(&b, "Then mint a trainer token for it:\n  curl -s -X POST %s/api/sessions/<id>/tokens -H %s -H 'Content-Type: application/json' -d '{\"role\":\"trainer\",\"name\":\"trainer\"}'\n\n", base, bearer)
	return b.String()
}
