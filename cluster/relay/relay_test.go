package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/sfu"
	"lectern/sfu/peer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const session = "lecture"

var secret = []byte("0123456789abcdef0123456789abcdef-cluster")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// node is one in-process Lectern node as far as relays go: a registry, a WebRTC
// edge, the origin handler on an HTTP server, and an edge-side Manager.
type node struct {
	id   string
	reg  *sfu.Registry
	edge *peer.Edge
	h    *Handler
	m    *Manager
	srv  *httptest.Server
	ctx  context.Context

	closeOnce sync.Once
	cancel    context.CancelFunc
}

type nodeOptions struct {
	grace, linger, poll time.Duration
}

func newNode(t testing.TB, id string, o nodeOptions) *node {
	t.Helper()
	if o.grace == 0 {
		o.grace = 30 * time.Second
	}
	if o.poll == 0 {
		o.poll = 100 * time.Millisecond
	}
	if o.linger == 0 {
		o.linger = time.Minute
	}
	iss, err := auth.NewIssuer(secret)
	if err != nil {
		t.Fatal(err)
	}
	e, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: o.grace, Logger: quiet})
	n := &node{id: id, reg: reg, edge: e}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("node", id)
	n.h = NewHandler(ServerConfig{Registry: reg, Edge: e, Issuer: iss, Logger: log})
	mux := http.NewServeMux()
	mux.Handle("/cluster/relay/", n.h)
	n.srv = httptest.NewServer(mux)
	n.m = New(Config{Registry: reg, Edge: e, Issuer: iss, NodeID: id, Logger: log, Linger: o.linger, PollInterval: o.poll})
	n.ctx, n.cancel = context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(n.close)
	return n
}

// testWriter sends the relays' logs to the test's log (shown when it fails).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// close stops the node: what a node's death looks like to the others.
func (n *node) close() {
	n.closeOnce.Do(func() {
		n.cancel()
		_ = n.m.Close()
		_ = n.h.Close()
		n.srv.Close()
		_ = n.edge.Close()
		n.reg.CloseAll()
	})
}

func (n *node) sess() *sfu.Session { return n.reg.Session(session) }

// pullTrainer makes n pull the trainer's publication from origin.
func (n *node) pullTrainer(t *testing.T, origin *node) {
	t.Helper()
	if err := n.m.Pull(n.ctx, session, sfu.TrainerPublication, origin.srv.URL); err != nil {
		t.Fatal(err)
	}
}

// publish connects a trainer publisher to n and plays a synthetic clip until the
// returned stop (or the test's end).
func (n *node) publish(t *testing.T, screen bool) (*testpeer.Publisher, func()) {
	t.Helper()
	pub, err := testpeer.NewPublisher(n.ctx, testpeer.Options{}, screen, func(offer string) (string, error) {
		_, ans, err := n.edge.Publish(n.sess(), sfu.TrainerPublication, offer)
		return ans, err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := testpeer.SyntheticClip(2*time.Second, 30, 30, 4000)
		_ = c.Play(ctx, clip.PlayOptions{
			Loop: true,
			WriteVideo: func(pkt *rtp.Packet) error {
				if pub.Screen != nil {
					if err := pub.Screen.WriteRTP(pkt); err != nil {
						return err
					}
				}
				return pub.Video.WriteRTP(pkt)
			},
			WriteAudio: func(pkt *rtp.Packet) error { return pub.Audio.WriteRTP(pkt) },
		})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			pub.Close()
		})
	}
	t.Cleanup(stop)
	return pub, stop
}

// waitTracks waits until n's trainer publication has n tracks with packets.
func (n *node) waitTracks(t testing.TB, want int) {
	t.Helper()
	eventually(t, n.ctx, "trainer tracks on "+n.id, func() bool {
		p, ok := n.sess().Publication(sfu.TrainerPublication)
		if !ok {
			return false
		}
		got := 0
		for _, tr := range p.Tracks() {
			if tr.Packets() > 0 {
				got++
			}
		}
		return got >= want
	})
}

var trainerLayout = peer.Layout{Video: []string{"trainer/video", "trainer/screen"}, Audio: []string{"trainer/audio"}}

// subscribe connects a subscriber to n's trainer video (and screen) and audio.
func (n *node) subscribe(t *testing.T, o testpeer.Options, videos int) *testpeer.Subscriber {
	t.Helper()
	s, err := testpeer.NewSubscriber(n.ctx, o, videos, 1, func(offer string) (string, error) {
		_, ans, err := n.edge.Subscribe(n.sess(), trainerLayout, offer)
		return ans, err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond until it holds or ctx ends.
func eventually(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestRelayFansOutOnceAtTheEdge(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	a.publish(t, false)
	a.waitTracks(t, 2)
	// Concurrent pulls share one attempt.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.m.Pull(b.ctx, session, sfu.TrainerPublication, a.srv.URL)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p, ok := b.sess().Publication(sfu.TrainerPublication)
	if !ok || !p.Relayed() || !p.Info().Relayed {
		t.Fatalf("B's trainer publication: present %v, relayed %v", ok, ok && p.Relayed())
	}
	subs := []*testpeer.Subscriber{b.subscribe(t, testpeer.Options{}, 1), b.subscribe(t, testpeer.Options{}, 1), b.subscribe(t, testpeer.Options{}, 1)}
	for i, s := range subs {
		if err := s.WaitPackets(b.ctx, 0, 150); err != nil {
			t.Fatalf("subscriber %d video: %v", i, err)
		}
		if err := s.WaitPackets(b.ctx, 1, 100); err != nil {
			t.Fatalf("subscriber %d audio: %v", i, err)
		}
		for sec := 0; sec < 2; sec++ {
			_, _, seqs := s.Track(sec).Snapshot()
			if g := testpeer.MaxGap(seqs); g != 1 {
				t.Fatalf("subscriber %d section %d: sequence gap %d", i, sec, g)
			}
		}
		if c := s.Track(0).Codec; !strings.EqualFold(c, webrtc.MimeTypeH264) {
			t.Fatalf("subscriber %d video codec %s", i, c)
		}
	}
	// Pulling again is a no-op: still one relay.
	b.pullTrainer(t, a)
	if out := a.h.Relays(); len(out) != 1 || out[0].Peer != "b" || !slices.Equal(out[0].Tracks, []string{"audio", "video"}) {
		t.Fatalf("A serves relays %+v, want one to b with audio and video", out)
	}
	if in := b.m.Relays(); len(in) != 1 || in[0].Peer != a.srv.URL || in[0].Bytes == 0 {
		t.Fatalf("B pulls relays %+v, want one from A carrying bytes", in)
	}
	if n := b.reg.Stats().PacketsIn.Load(); n == 0 {
		t.Fatal("no packet written to B's tracks")
	}
	// The metrics count the relays on both sides.
	if in, out := relayGauges(t, b), relayGauges(t, a); in["in"] != 1 || in["out"] != 0 || out["out"] != 1 || out["in"] != 0 {
		t.Fatalf("lectern_relays: B %v, A %v; want B in 1, A out 1", in, out)
	}
}

func TestRelayEdgeAnswersNACKsFromItsCache(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	a.publish(t, false)
	a.waitTracks(t, 2)
	b.pullTrainer(t, a)
	d := &testpeer.Dropper{}
	s := b.subscribe(t, testpeer.Options{NoReplayProtection: true, Interceptors: []interceptor.Factory{d.Factory()}}, 1)
	eventually(t, b.ctx, "30 packets dropped at B's subscriber", func() bool { return d.Dropped() >= 30 })
	missing := s.Track(0).Missing
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	// (A packet dropped before the first one received is never missed: ≥ 29 NACKs.)
	for missing() != 0 || b.reg.Stats().NACKsAnswered.Load() < 29 {
		select {
		case <-ctx.Done():
			st := b.reg.Stats()
			t.Fatalf("%d packets missing at B's subscriber after %d drops; B answered %d NACKs, missed %d; A got %d",
				missing(), d.Dropped(), st.NACKsAnswered.Load(), st.NACKsMissed.Load(), a.h.NACKs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The subscriber's losses are B's business: none of its NACKs reached A (the
	// loopback leg between the nodes lost nothing).
	if n := a.h.NACKs(); n != 0 {
		t.Fatalf("%d NACKs reached the origin", n)
	}
}

func TestRelayKeyframeRequestsCoalesced(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	pub, _ := a.publish(t, false)
	a.waitTracks(t, 2)
	b.pullTrainer(t, a)
	subs := []*testpeer.Subscriber{b.subscribe(t, testpeer.Options{}, 1), b.subscribe(t, testpeer.Options{}, 1), b.subscribe(t, testpeer.Options{}, 1)}
	for _, s := range subs {
		if err := s.WaitPackets(b.ctx, 0, 30); err != nil {
			t.Fatal(err)
		}
	}
	// Past both hops' coalescing windows of the joins' own requests.
	time.Sleep(1100 * time.Millisecond)
	before := pub.PLIs.Load()
	for range 3 {
		for _, s := range subs {
			if err := s.SendPLI(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, b.ctx, "a keyframe request at the publisher", func() bool { return pub.PLIs.Load() > before })
	time.Sleep(300 * time.Millisecond) // any further request would be on its way by now
	if got := pub.PLIs.Load() - before; got != 1 {
		t.Fatalf("9 PLIs from 3 subscribers on the edge reached the publisher %d times, want once", got)
	}
}

func TestRelayRefusesBadCredentials(t *testing.T) {
	a := newNode(t, "a", nodeOptions{})
	a.publish(t, false)
	a.waitTracks(t, 2)
	iss, _ := auth.NewIssuer(secret)
	good, err := iss.MintNode("b")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewIssuer([]byte("another-cluster-secret-of-32-bytes!!"))
	forged, _ := other.MintNode("b")
	now := time.Now()
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, auth.Claims{Role: auth.RoleNode, Name: "b",
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "lectern", IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)),
			ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	trainer, _, err := iss.Mint(auth.MintRequest{Session: session, Role: auth.RoleTrainer, Name: "t", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	url := a.srv.URL + "/cluster/relay/" + session + "/trainer"
	for _, tc := range []struct {
		name, token, path string
		method            string
		status            int
		reason            string
	}{
		{"missing", "", url, http.MethodGet, 401, "node credential is required"},
		{"forged", forged, url, http.MethodGet, 401, "signature"},
		{"expired", expired, url, http.MethodGet, 401, "expired"},
		{"participant", trainer, url, http.MethodGet, 401, "not a node credential"},
		{"missing-post", "", url, http.MethodPost, 401, "node credential is required"},
		{"unknown-session", good, a.srv.URL + "/cluster/relay/nosuch/trainer", http.MethodGet, 404, "not live"},
		{"unknown-publication", good, a.srv.URL + "/cluster/relay/" + session + "/site-hue", http.MethodGet, 404, "not live"},
		{"bad-name", good, a.srv.URL + "/cluster/relay/" + session + "/Bad%20Name", http.MethodGet, 400, "valid names"},
		{"bad-offer", good, url, http.MethodPost, 400, "not SDP"},
		{"unknown-relay", good, url + "/0123", http.MethodDelete, 404, "no such relay"},
		{"good", good, url, http.MethodGet, 200, `"name":"video"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.path, strings.NewReader("v=garbage"))
			if tc.method == http.MethodPost {
				req.Header.Set("Content-Type", "application/sdp")
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.reason) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.reason)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
	// The edge side says why too.
	b := newNode(t, "b", nodeOptions{})
	err = b.m.Pull(b.ctx, "nosuch", sfu.TrainerPublication, a.srv.URL)
	if !errors.Is(err, ErrNotLive) {
		t.Fatalf("pull of an unknown session: %v, want ErrNotLive", err)
	}
	if len(b.m.Relays()) != 0 {
		t.Fatal("a failed pull left a relay")
	}
	// A relay never takes over a publication whose publisher is connected here.
	if err := a.m.Pull(a.ctx, session, sfu.TrainerPublication, b.srv.URL); !errors.Is(err, ErrLocal) {
		t.Fatalf("pull of a local publication: %v, want ErrLocal", err)
	}
	for _, bad := range []string{"ftp://x", "not a url", ""} {
		if err := b.m.Pull(b.ctx, session, sfu.TrainerPublication, bad); err == nil {
			t.Fatalf("pull from origin %q accepted", bad)
		}
	}
}

func TestRelayContinuesFromANewOrigin(t *testing.T) {
	a, b, c := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{}), newNode(t, "c", nodeOptions{})
	a.publish(t, false)
	a.waitTracks(t, 2)
	b.pullTrainer(t, a)
	s := b.subscribe(t, testpeer.Options{}, 1)
	if err := s.WaitPackets(b.ctx, 0, 60); err != nil {
		t.Fatal(err)
	}
	a.close() // the origin dies
	eventually(t, b.ctx, "B's publication paused", func() bool {
		p, ok := b.sess().Publication(sfu.TrainerPublication)
		return ok && p.Info().Paused && len(b.m.Relays()) == 0
	})
	if st := s.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("B's subscriber: %s", st)
	}
	// The trainer reconnects to C, the new origin; B pulls from there.
	c.publish(t, false)
	c.waitTracks(t, 2)
	n1, _, _ := s.Track(0).Snapshot()
	a1, _, _ := s.Track(1).Snapshot()
	b.pullTrainer(t, c)
	if err := s.WaitPackets(b.ctx, 0, n1+100); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitPackets(b.ctx, 1, a1+50); err != nil {
		t.Fatal(err)
	}
	for sec := 0; sec < 2; sec++ {
		_, _, seqs := s.Track(sec).Snapshot()
		if g := testpeer.MaxGap(seqs); g != 1 {
			t.Fatalf("section %d: sequence gap %d across the change of origin", sec, g)
		}
	}
	if st := s.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("B's subscriber: %s", st)
	}
	if in := b.m.Relays(); len(in) != 1 || in[0].Peer != c.srv.URL {
		t.Fatalf("B's relays %+v, want one from C", in)
	}
}

func TestRelayFollowsTrackChanges(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	_, stop := a.publish(t, false)
	a.waitTracks(t, 2)
	b.pullTrainer(t, a)
	s := b.subscribe(t, testpeer.Options{}, 2)
	if err := s.WaitPackets(b.ctx, 0, 60); err != nil {
		t.Fatal(err)
	}
	// The trainer reconnects with a screen share: the origin's track list grows and
	// B re-pulls on its own.
	stop()
	a.publish(t, true)
	if err := s.WaitPackets(b.ctx, 1, 60); err != nil {
		t.Fatalf("screen share on B: %v", err)
	}
	if in := b.m.Relays(); len(in) != 1 || !slices.Equal(in[0].Tracks, []string{"audio", "screen", "video"}) {
		t.Fatalf("B's relays %+v, want one with audio, screen, video", in)
	}
	eventually(t, b.ctx, "A serves one relay", func() bool { return len(a.h.Relays()) == 1 })
}

func TestRelayLingersThenEnds(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{linger: 300 * time.Millisecond, poll: 50 * time.Millisecond})
	a.publish(t, false)
	a.waitTracks(t, 2)
	b.pullTrainer(t, a)
	s := b.subscribe(t, testpeer.Options{}, 1)
	if err := s.WaitPackets(b.ctx, 0, 30); err != nil {
		t.Fatal(err)
	}
	if len(b.m.Relays()) != 1 {
		t.Fatal("relay ended while its subscriber watched")
	}
	s.Close()
	eventually(t, b.ctx, "relay ended after the linger", func() bool {
		_, live := b.sess().Publication(sfu.TrainerPublication)
		return len(b.m.Relays()) == 0 && len(a.h.Relays()) == 0 && !live
	})
}

// Every simulcast layer goes over the relay on its own m-line, exactly: the edge
// gets the same layers as tracks of the same names, and its subscribers' layer
// choice works on them as at the origin.
func TestRelayCarriesEverySimulcastLayer(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	layers := []*clip.Clip{
		testpeer.SyntheticClip(2*time.Second, 30, 30, 6000),
		testpeer.SyntheticClip(2*time.Second, 30, 30, 2000),
		testpeer.SyntheticClip(2*time.Second, 30, 30, 800),
	}
	pub, err := testpeer.NewSimulcastPublisher(a.ctx, func(offer string) (string, error) {
		_, ans, err := a.edge.Publish(a.sess(), sfu.TrainerPublication, offer)
		return ans, err
	}, testpeer.SimulcastOptions{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	a.waitTracks(t, 4)
	b.pullTrainer(t, a)
	want := []string{"audio", "video", "video~1", "video~2"}
	if in := b.m.Relays(); len(in) != 1 || !slices.Equal(in[0].Tracks, want) {
		t.Fatalf("B's relays %+v, want one carrying %v", in, want)
	}
	s := b.subscribe(t, testpeer.Options{}, 1)
	if err := s.WaitPackets(b.ctx, 0, 100); err != nil {
		t.Fatal(err)
	}
	b.waitTracks(t, 4)
	p, _ := b.sess().Publication(sfu.TrainerPublication)
	sizes := map[string]float64{}
	for _, tr := range p.Tracks() {
		sizes[tr.Name()] = float64(tr.Bytes()) / float64(max(tr.Packets(), 1))
	}
	// Each layer arrived as itself: the mean packet sizes keep the layers' order.
	if !(sizes["trainer/video"] > sizes["trainer/video~1"] && sizes["trainer/video~1"] > sizes["trainer/video~2"]) {
		t.Fatalf("mean packet sizes on B %v: layers mixed up", sizes)
	}
}

// Two publications pulled from one origin at once (the trainer and a classroom's
// talk-back) each get their own connection and neither takes the other's packets.
func TestRelayTwoPublicationsFromOneOrigin(t *testing.T) {
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	a.publish(t, false)
	site, err := testpeer.NewPublisher(a.ctx, testpeer.Options{}, false, func(offer string) (string, error) {
		_, ans, err := a.edge.Publish(a.sess(), "site-hue", offer)
		return ans, err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = site.Play(ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 1500), nil)
	}()
	t.Cleanup(func() { cancel(); <-done; site.Close() })
	a.waitTracks(t, 2)
	for _, pub := range []string{sfu.TrainerPublication, "site-hue"} {
		if err := b.m.Pull(b.ctx, session, pub, a.srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	s, err := testpeer.NewSubscriber(b.ctx, testpeer.Options{}, 2, 2, func(offer string) (string, error) {
		_, ans, err := b.edge.Subscribe(b.sess(), peer.Layout{Video: []string{"trainer/video", "site-hue/video"},
			Audio: []string{"trainer/audio", "site-hue/audio"}}, offer)
		return ans, err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for i := range 4 {
		if err := s.WaitPackets(b.ctx, i, 60); err != nil {
			t.Fatalf("section %d: %v", i, err)
		}
		_, _, seqs := s.Track(i).Snapshot()
		if g := testpeer.MaxGap(seqs); g != 1 {
			t.Fatalf("section %d: sequence gap %d", i, g)
		}
	}
	if n := len(a.h.Relays()); n != 2 {
		t.Fatalf("A serves %d relays, want 2", n)
	}
}

// relayGauges returns n's lectern_relays by direction.
func relayGauges(t *testing.T, n *node) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(n.h, n.m))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "lectern_relays" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return got
}
