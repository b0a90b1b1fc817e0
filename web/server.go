package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lectern/auth"
	"lectern/catalog"
	"lectern/cluster"
	"lectern/cluster/relay"
	"lectern/events"
	"lectern/floor"
	"lectern/internal/limit"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// webrtcEdge is what the HTTP layer needs of the WebRTC edge.
type webrtcEdge interface {
	Publish(sess *sfu.Session, publication, offer string) (*peer.Resource, string, error)
	SubscribeWith(sess *sfu.Session, layout peer.Layout, offer string, opts peer.SubscribeOptions) (*peer.Resource, string, error)
	Resource(id string) (*peer.Resource, bool)
	ICEServers() []webrtc.ICEServer
}

// Config wires a Server.
type Config struct {
	Catalog    *catalog.Catalog
	Registry   *sfu.Registry
	WebRTC     webrtcEdge
	Events     *events.Broker
	Tokens     *auth.Issuer
	AdminToken string
	// CORSOrigins lists origins allowed to call the API and WHIP/WHEP from a browser
	// (e.g. a training portal); "*" allows any.
	CORSOrigins []string
	// PublicURL is the base URL used in links handed out (invitations).
	PublicURL string
	// RTSPURL is the rtsp:// base URL devices use (RTSPBaseURL), for the device
	// codes' rtsp_url; "" when RTSP is off.
	RTSPURL string
	// TURNServers, when set (the embedded TURN server is on), returns its URLs with
	// credentials minted for one participant, valid until expiry at most; the
	// WHIP/WHEP answers advertise them in Link headers beside the static ICE
	// servers. host is the name the client reached this server at.
	TURNServers func(host, participant string, expiry time.Time) []webrtc.ICEServer
	// Metrics is where /metrics reads from; nil disables the endpoint.
	Metrics prometheus.Gatherer
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// MaxBody bounds request bodies; default 64 KiB.
	MaxBody int64
	// RequestTimeout bounds an ordinary request: its body must arrive within it,
	// its answer be written within twice it (deadlines.go); default 60 s. Event
	// streams and replays are left to their handlers.
	RequestTimeout time.Duration
	// EventStreamsPerToken and EventStreamsPerAddress bound the open event streams
	// of one token and of one client address: 0 takes DefaultEventStreamsPerToken
	// and DefaultEventStreamsPerAddress, a negative value means no limit.
	EventStreamsPerToken, EventStreamsPerAddress int
	// WHEPConnectingPerToken and WHEPConnectingPerAddress bound the WHEP offers of
	// one token and of one client address still connecting: 0 takes
	// DefaultWHEPConnectingPerToken and DefaultWHEPConnectingPerAddress, a negative
	// value means no limit. ViewerConnections, when positive, bounds the live WHEP
	// connections of one viewer token (off by default: a viewer link is often
	// shared by a hall's screens, and by load tools).
	WHEPConnectingPerToken, WHEPConnectingPerAddress, ViewerConnections int
	// Replays, when set, serves the recordings (/api/recordings, /replay/...).
	Replays *ReplayConfig
	// NewFloor makes the talk-back state (hands, the floor), reporting its
	// changes to hook, which serves them as events and marks the recording's
	// timeline. Nil: floor.NewMemory, one node's state.
	NewFloor func(hook func(floor.Event)) floor.Floor
	// OnFloor, when set, is told every change of the floor after the pages and the
	// recording's timeline (the app sets the programme's speakers from it). It runs
	// on the goroutine that made the change: it must not block.
	OnFloor func(floor.Event)
	// Programme says the server makes every session's programme (package
	// programme): /whep/{session} then plays it (the trainer with the classrooms
	// that hold the floor), /whep/{session}/trainer the trainer's own tracks.
	// False: /whep/{session} plays the trainer's, unless a programme is live.
	Programme bool
	// Cluster, when set, is this node's membership of a cluster (issue 13):
	// publications claimed, placement, other nodes. Nil: a single node.
	Cluster *cluster.Cluster
	// Relays pulls other nodes' publications here (the edge side); RelayOrigin
	// serves this node's publications to other nodes at /cluster/relay/. Both set
	// exactly when Cluster is.
	Relays      *relay.Manager
	RelayOrigin *relay.Handler
	// NodeLoad samples this node's load for GET /api/nodes (the cluster's
	// heartbeat samples the same); nil: the registry's subscribers and sessions.
	NodeLoad func() cluster.Load
	// Sources manages RTSP pull sources; nil disables /api/sessions/{id}/sources.
	Sources rtspSources
	// Pages, when set, serves the web pages (everything not matched by the API).
	Pages http.Handler
	// LobbyPublic lists every session in GET /api/sessions (the lobby) for anyone;
	// otherwise only sessions created with listed: true are shown to anyone, the
	// others to the admin and to holders of their tokens.
	LobbyPublic bool
	// AuthFailures limits failed authentications per client address (shared with
	// the RTSP edge); nil means a limiter with the auth package's defaults.
	AuthFailures *auth.FailureLimiter
	Logger       *slog.Logger
}

// Server is the HTTP handler of Lectern.
type Server struct {
	cfg    Config
	log    *slog.Logger
	router chi.Router
	floor  floor.Floor
	authn  *auth.Authenticator
	// streams counts the open event streams per token and per address.
	streams *streamLimits
	// whep counts WHEP offers still connecting and viewers' live connections.
	whep *whepLimits
	// cluster is the cluster's request paths and loop (cluster.go); nil on a
	// single node.
	cluster *clusterState
}

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Catalog == nil || cfg.Registry == nil || cfg.WebRTC == nil || cfg.Events == nil || cfg.Tokens == nil {
		return nil, errors.New("web: Catalog, Registry, WebRTC, Events and Tokens are required")
	}
	if cfg.AdminToken == "" {
		return nil, errors.New("web: an admin token is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AuthFailures == nil {
		cfg.AuthFailures = auth.NewFailureLimiter(auth.DefaultFailureBurst, auth.DefaultFailureEvery)
	}
	if !cfg.Tokens.HasCodes() { // device codes (api_codes.go) are taken like tokens
		cfg.Tokens = cfg.Tokens.WithCodes(CatalogCodes(cfg.Catalog))
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "http")}
	s.authn = &auth.Authenticator{Issuer: cfg.Tokens, AdminToken: cfg.AdminToken, Failures: cfg.AuthFailures}
	if cfg.NewFloor == nil {
		cfg.NewFloor = func(hook func(floor.Event)) floor.Floor { return floor.NewMemory(hook) }
	}
	s.floor = cfg.NewFloor(s.floorChanged)
	s.streams = newStreamLimits(cfg.EventStreamsPerToken, cfg.EventStreamsPerAddress)
	s.whep = newWHEPLimits(cfg.WHEPConnectingPerToken, cfg.WHEPConnectingPerAddress, cfg.ViewerConnections)
	s.cluster = newClusterState(s) // before routes, which wrap with it; its goroutine ends at Close
	s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) routes() {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(s.deadlines)
	r.Use(s.accessLog)
	origins := s.cfg.CORSOrigins
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	r.Use(cors.Handler(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: corsMethods,
		// Range: a portal's player may ask for several ranges of a download, which is
		// not a CORS-safelisted Range. X-Lectern-Region: placement's hint (cluster.go).
		AllowedHeaders: []string{"Authorization", "Content-Type", "If-Match", "Range", regionHeader},
		// Access-Control-Allow-Methods is read by WHIP clients on the OPTIONS answer
		// itself (see answerOptions); Content-Range by players reading ranges.
		ExposedHeaders: []string{"Location", "ETag", "Link", "Accept-Patch", "Accept-Post",
			"Access-Control-Allow-Methods", "Content-Range"},
		MaxAge:             600,
		OptionsPassthrough: true, // answerOptions ends preflights; WHIP/WHEP ones also advertise ICE servers
	}))
	r.Use(answerOptions)

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	r.Get("/readyz", s.readyz)
	r.Get("/api/nodes", s.listNodes) // api_nodes.go (admin)
	if s.cfg.Metrics != nil {
		r.Handle("/metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}))
	}

	r.Route("/api/sessions", func(r chi.Router) {
		r.Post("/", s.createSession)
		r.Get("/", s.listSessions)
		r.Route("/{session}", func(r chi.Router) {
			r.Get("/", s.getSession)
			r.Delete("/", s.deleteSession)
			r.Post("/tokens", s.mintToken)
			r.Post("/hands", s.raiseHand)
			r.Delete("/hands", s.lowerHand)
			r.Put("/speakers/{participant}", s.grantFloor)
			r.Delete("/speakers/{participant}", s.revokeFloor)
			r.Get("/events", s.sessionEvents)
			s.sourceRoutes(r)
			r.Patch("/", s.updateSession)
			s.codeRoutes(r)
		})
	})

	r.Route("/whip/{session}", func(r chi.Router) {
		r.Post("/", s.whipPublish)
		s.resourceRoutes(r)
	})
	r.Route("/whep/{session}", func(r chi.Router) {
		r.Post("/", s.whepSubscribe)
		r.Post("/{publication}", s.whepSubscribe)
		s.resourceRoutes(r)
		r.Get("/{resource}/layer", s.getLayer)
		r.Post("/{resource}/layer", s.setLayer)
		r.Options("/{resource}/layer", s.layerOptions)
	})
	if s.cfg.RelayOrigin != nil { // other nodes pull this node's publications (node credentials)
		r.Handle("/cluster/relay/*", s.cfg.RelayOrigin)
	}
	s.replayRoutes(r, s.cfg.Replays)
	s.embedRoutes(r)
	if s.cfg.Pages != nil {
		r.Handle("/*", s.cluster.pages(s.cfg.Pages)) // cluster.go: the pages may reach every node
	}
	s.router = r
}

// resourceRoutes are what WHIP and WHEP share: the preflight of the endpoint,
// and a resource's trickle ICE and ICE restarts (PATCH), its end (DELETE) and
// preflight.
func (s *Server) resourceRoutes(r chi.Router) {
	r.Options("/", s.whipOptions)
	r.Patch("/{resource}", s.patchResource)
	r.Delete("/{resource}", s.deleteResource)
	r.Options("/{resource}", s.whipOptions)
}

// corsMethods are the methods a page of another origin may use. A preflight lists
// them all rather than echoing the one asked for: some WHIP clients read the list to
// decide whether trickle ICE (PATCH) is supported.
var corsMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// whipMethods are what WHIP/WHEP URLs answer to, PATCH being trickle ICE;
// layerMethods what a WHEP resource's layer URL answers to.
const (
	whipMethods  = "POST, PATCH, DELETE, OPTIONS"
	layerMethods = "GET, POST, OPTIONS"
)

// answerOptions runs after the CORS middleware (which, with OptionsPassthrough,
// only adds headers). It ends every CORS preflight with 204: the router has OPTIONS
// routes only for WHIP and WHEP, so preflights of the API and the replays got 405,
// which a browser takes as a refusal, and a portal could not send its Bearer token.
// WHIP/WHEP OPTIONS, preflight or not, go on to whipOptions (ICE servers in Link
// headers, Accept-Post/Accept-Patch) with Access-Control-Allow-Methods naming PATCH:
// a browser WHIP client that does not find PATCH there waits for every ICE candidate
// before it offers (seconds) instead of trickling them.
func answerOptions(next http.Handler) http.Handler {
	allMethods := strings.Join(corsMethods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if strings.HasPrefix(r.URL.Path, "/whip/") || strings.HasPrefix(r.URL.Path, "/whep/") {
			methods := whipMethods
			if strings.HasPrefix(r.URL.Path, "/whep/") && strings.HasSuffix(r.URL.Path, "/layer") && strings.Count(r.URL.Path, "/") == 4 {
				methods = layerMethods
			}
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Allow", methods)
			next.ServeHTTP(w, r)
			return
		}
		_, hasOrigin := r.Header["Origin"]
		if !hasOrigin || r.Header.Get("Access-Control-Request-Method") == "" {
			next.ServeHTTP(w, r) // not a preflight: the router answers (405 with Allow)
			return
		}
		if h.Get("Access-Control-Allow-Origin") != "" { // the origin is allowed
			h.Set("Access-Control-Allow-Methods", allMethods)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error(), Status: http.StatusServiceUnavailable})
			return
		}
	}
	_, _ = io.WriteString(w, "ready\n")
}

// accessLog logs each request at debug level, without query strings (they may carry
// tokens).
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(), "bytes", ww.BytesWritten(), "duration", time.Since(start))
	})
}

// readBody reads a request body of the given media type, bounded by MaxBody.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, mediaType string) ([]byte, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(ct, mediaType) {
		return nil, fmt.Errorf("%w: Content-Type must be %s, got %q", errUnsupportedMedia, mediaType, r.Header.Get("Content-Type"))
	}
	limit := s.cfg.MaxBody
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) { // deadlines.go
			return nil, fmt.Errorf("%w: the body did not arrive within %v", errRequestTimeout, s.cfg.RequestTimeout)
		}
		return nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	return body, nil
}

// principal is who made a request.
type principal struct {
	admin  bool
	claims *auth.Claims // nil for admin
}

// name returns the participant name, "admin" for the admin.
func (p principal) name() string {
	if p.admin {
		return "admin"
	}
	return p.claims.Name
}

// authenticate reads the Bearer token (or ?token=) and verifies it. Failures are
// counted per client address: an address that presented too many bad tokens is
// refused (429) for a while, see auth.Authenticator. An embed token is honoured only
// while the catalogue keeps its record (deleting the record revokes it).
func (s *Server) authenticate(r *http.Request) (principal, error) {
	tok, err := auth.BearerToken(r)
	if err != nil {
		return principal{}, err
	}
	c, admin, err := s.authn.Authenticate(limit.ClientAddr(r), tok)
	switch {
	case err != nil:
		return principal{}, err
	case admin:
		return principal{admin: true}, nil
	case c.Role == auth.RoleEmbed:
		if e, ok := s.cfg.Catalog.Embed(c.ID); !ok || e.Recording != c.Recording || e.Session != c.Session {
			return principal{}, fmt.Errorf("%w: this embed code was revoked or has expired", auth.ErrInvalidToken)
		}
	}
	return principal{claims: c}, nil
}

// authorize authenticates and checks that the caller is the admin or holds a token
// of the session with one of the roles (any participant's role when none is given).
// An embed token is allowed only to read its own recording (embedAllows).
func (s *Server) authorize(r *http.Request, session string, roles ...auth.Role) (principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return p, err
	}
	if p.admin {
		return p, nil
	}
	if p.claims.Role == auth.RoleEmbed && !slices.Contains(roles, auth.RoleEmbed) {
		return p, embedAllows(r, p.claims, session)
	}
	return p, p.claims.Allows(session, roles...)
}

// requireAdmin authenticates the admin.
func (s *Server) requireAdmin(r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if !p.admin {
		return fmt.Errorf("%w: this needs the admin token", errForbidden)
	}
	return nil
}

// member resolves the {session} of the URL and checks that the caller is the admin
// or holds a token of that session with one of roles (any role when none is given).
// On failure it writes the error response and returns ok == false.
func (s *Server) member(w http.ResponseWriter, r *http.Request, roles ...auth.Role) (c catalog.Session, p principal, ok bool) {
	c, err := s.session(r)
	if err == nil {
		p, err = s.authorize(r, c.ID, roles...)
	}
	if err != nil {
		s.httpError(w, r, err)
		return c, p, false
	}
	return c, p, true
}

// session resolves the {session} URL parameter to its definition.
func (s *Server) session(r *http.Request) (catalog.Session, error) {
	id := chi.URLParam(r, "session")
	if !catalog.ValidID(id) {
		return catalog.Session{}, fmt.Errorf("%w: %q", catalog.ErrNotFound, id)
	}
	return s.cfg.Catalog.Get(id)
}
