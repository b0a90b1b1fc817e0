package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"lectern/recorder"
	"lectern/storage"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/floor"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/programme"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testAdmin = "test-admin-token-0123456789"

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// stack is a full Lectern HTTP stack on 127.0.0.1, wired like cmd/lectern does.
type stack struct {
	t      *testing.T
	url    string
	reg    *sfu.Registry
	edge   *peer.Edge
	issuer *auth.Issuer
	ctx    context.Context
}

type stackOptions struct {
	maxSubscribers int
	iceTimeout     time.Duration
	grace          time.Duration
	pages          http.Handler // Config.Pages (the web pages), nil for none
	sources        bool         // RTSP pull sources enabled
	iceServers     []webrtc.ICEServer
	// recorder records every publication (2 s segments, local store) and serves
	// the replay API, attached as cmd/lectern attaches it.
	recorder bool
	timeout  time.Duration // the stack's request context; default 90 s

	// sourcesConfig adjusts the RTSP sources' config (allow-list, trainers).
	sourcesConfig func(*rtsp.SourcesConfig)
	// corsOrigins are Config.CORSOrigins; default https://portal.example.edu.
	corsOrigins []string
	// store is the recorder's store (with recorder); nil: a local directory.
	store testStore
	// replayRedirect is ReplayConfig.Redirect (with recorder).
	replayRedirect bool
	// lobbyPublic is Config.LobbyPublic: the lobby lists every session.
	lobbyPublic bool
	// config adjusts the server's Config before New (limits and the like).
	config func(*Config)
	// webrtcUDP is the WebRTC edge's UDP address; default 127.0.0.1:0. Clients
	// that gather no loopback candidates (libnice) need ":0".
	webrtcUDP string
	// programme makes every session's programme (programme.Manager, the
	// catalogue's programme_video, the floor's speakers), wired as cmd/lectern
	// wires it: /whep/{session} plays it, the recorder records it.
	programme bool
}

// newStackBase is what every test server starts from: a catalog in a temp
// directory, a logger (silent unless LECTERN_TEST_LOG is set) and an event broker.
func newStackBase(t *testing.T) (*catalog.Catalog, *slog.Logger, *events.Broker) {
	t.Helper()
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LECTERN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cat, log, events.NewBroker(events.Options{Logger: log})
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	cat, log, broker := newStackBase(t)
	if o.grace == 0 {
		o.grace = -1
	}
	if o.timeout == 0 {
		o.timeout = 90 * time.Second
	}
	var replays *ReplayConfig
	var rec *recorder.Recorder
	var reg *sfu.Registry
	onEvent := broker.Publish
	if o.recorder {
		store := o.store
		if store == nil {
			dir, err := storage.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = dir.Close() }) // after the recorder's cleanup below
			store = dir
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		var err error
		rec, err = recorder.New(rctx, recorder.Config{Store: store, SpoolDir: t.TempDir(), Logger: log,
			SegmentDuration: 2 * time.Second, RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
			Title: func(id string) string { c, _ := cat.Get(id); return c.Title }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // runs after the cleanup below has closed the sessions
			cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
			defer ccancel()
			if err := rec.Close(cctx); err != nil {
				t.Errorf("closing the recorder: %v", err)
			}
		})
		replays = &ReplayConfig{Recorder: rec, Store: store, Redirect: o.replayRedirect}
		onEvent = func(session, typ string, data any) {
			broker.Publish(session, typ, data)
			if typ == sfu.EventPublicationAdded {
				if sess, ok := reg.Lookup(session); ok {
					rec.Attach(sess)
				}
			}
		}
	}
	var prog *programme.Manager
	if o.programme {
		prog = programme.New(programme.Config{Logger: log, VideoMode: func(id string) string { c, _ := cat.Get(id); return c.VideoMode() }})
		t.Cleanup(func() { _ = prog.Close() }) // after the sessions closed (serveStack's cleanup), before the recorder's
		inner := onEvent
		onEvent = func(session, typ string, data any) {
			inner(session, typ, data)
			if typ == sfu.EventPublicationAdded {
				if sess, ok := reg.Lookup(session); ok {
					prog.Attach(sess)
				}
			}
		}
	}
	reg = sfu.NewRegistry(sfu.RegistryConfig{Grace: o.grace, MaxSubscribers: o.maxSubscribers, OnEvent: onEvent, Logger: log})
	if o.webrtcUDP == "" {
		o.webrtcUDP = "127.0.0.1:0"
	}
	edge, err := peer.New(peer.Config{UDPAddr: o.webrtcUDP, ICETimeout: o.iceTimeout, Logger: log, ICEServers: o.iceServers})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := auth.NewIssuer(testSecret)
	if o.corsOrigins == nil {
		o.corsOrigins = []string{"https://portal.example.edu"}
	}
	cfg := Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer, AdminToken: testAdmin,
		CORSOrigins: o.corsOrigins, PublicURL: "http://lectern.test",
		Replays: replays, Pages: o.pages, LobbyPublic: o.lobbyPublic, Logger: log}
	if prog != nil {
		cfg.Programme = true
		cfg.OnFloor = func(e floor.Event) {
			if e.Change == floor.Granted || e.Change == floor.Revoked {
				pubs := []string{}
				for _, sp := range e.Speakers {
					pubs = append(pubs, sp.Publication)
				}
				prog.SetSpeakers(e.Session, pubs)
			}
		}
	}
	if o.config != nil {
		o.config(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.sources {
		scfg := rtsp.SourcesConfig{Logger: log, Sessions: func(id string) (*sfu.Session, error) {
			if _, err := cat.Get(id); err != nil {
				return nil, err
			}
			return reg.Session(id), nil
		}}
		if o.sourcesConfig != nil {
			o.sourcesConfig(&scfg)
		}
		srcs := rtsp.NewSources(scfg)
		t.Cleanup(srcs.Close)
		h.cfg.Sources = srcs
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	return serveStack(t, h, ctx, cancel, broker, reg, edge, issuer)
}

// serveStack serves h on a test server; at the end of the test it cancels the
// stack's ctx, then closes the broker, the server, the sessions and the WebRTC
// edge.
func serveStack(t *testing.T, h http.Handler, ctx context.Context, cancel context.CancelFunc,
	broker *events.Broker, reg *sfu.Registry, edge *peer.Edge, issuer *auth.Issuer) *stack {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		cancel()
		broker.Close()
		srv.Close()
		reg.CloseAll()
		_ = edge.Close()
	})
	return &stack{t: t, url: srv.URL, reg: reg, edge: edge, issuer: issuer, ctx: ctx}
}

// do sends a request and returns the response with its body read.
func (s *stack) do(method, path, token, contentType, body string, hdr ...string) (*http.Response, string) {
	s.t.Helper()
	return testenv.Do(s.t, s.ctx, nil, method, s.url+path, token, contentType, body, hdr...)
}

func (s *stack) createSession(title string) string {
	s.t.Helper()
	resp, body := s.do("POST", "/api/sessions", testAdmin, "application/json", fmt.Sprintf(`{"title":%q}`, title))
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("create session: %d %s", resp.StatusCode, body)
	}
	var c catalog.Session
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		s.t.Fatal(err)
	}
	return c.ID
}

func (s *stack) token(session string, role auth.Role, name string) string {
	s.t.Helper()
	resp, body := s.do("POST", "/api/sessions/"+session+"/tokens", testAdmin, "application/json",
		fmt.Sprintf(`{"role":%q,"name":%q,"display":"Lớp %s","ttl":"1h"}`, role, name, name))
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("mint token: %d %s", resp.StatusCode, body)
	}
	var m mintResponse
	_ = json.Unmarshal([]byte(body), &m)
	return m.Token
}

// signal returns a testpeer signal that POSTs the offer and remembers the resource.
func (s *stack) signal(path, token string, location *string) testpeer.Signal {
	return func(offer string) (string, error) {
		req, _ := http.NewRequestWithContext(s.ctx, "POST", s.url+path, strings.NewReader(offer))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		if location != nil {
			*location = resp.Header.Get("Location")
		}
		return string(b), nil
	}
}

// sse is a live Server-Sent Events stream.
type sse struct {
	events chan events.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *stack) subscribeEvents(session, token string) *sse {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/sessions/"+session+"/events?token="+token, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("events: %d", resp.StatusCode)
	}
	st := &sse{events: make(chan events.Event, 256), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var ev events.Event
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev)
				if ev.Type == "" {
					ev.Type = typ
				}
				st.events <- ev
			}
		}
	}()
	s.t.Cleanup(st.close)
	return st
}

func (e *sse) close() {
	e.cancel()
	<-e.done
}

// waitFor waits for an event of the given type whose JSON data contains want.
func (e *sse) waitFor(t *testing.T, typ, want string) events.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-e.events:
			data, _ := json.Marshal(ev.Data)
			if ev.Type == typ && strings.Contains(string(data), want) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event containing %q", typ, want)
		}
	}
}
