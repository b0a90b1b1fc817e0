package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// Issue 13: a session's event stream is the same whichever node a page talks
// to. Two real app nodes on a real redis-server, pion peers over loopback.

// pageEvent is one event a page's stream received.
type pageEvent struct {
	Type string
	Data json.RawMessage
}

// label is the event as the sequence comparison sees it: its type, with the
// publication's name for the publications' events.
func (e pageEvent) label() string {
	if strings.HasPrefix(e.Type, "publication.") {
		var info struct{ Name string }
		_ = json.Unmarshal(e.Data, &info)
		return e.Type + ":" + info.Name
	}
	return e.Type
}

// page is a page's event stream (GET /api/sessions/{id}/events), read until it
// ends or the test does.
type page struct {
	t      *testing.T
	name   string
	cancel context.CancelFunc
	done   chan struct{} // the stream ended

	mu     sync.Mutex
	events []pageEvent
	more   chan struct{} // closed and replaced at every event
}

func openPage(t *testing.T, name, base, session, token string) *page {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/sessions/"+session+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("%s: events: %d", name, resp.StatusCode)
	}
	p := &page{t: t, name: name, cancel: cancel, done: make(chan struct{}), more: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			var ev pageEvent
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) != nil {
				continue
			}
			p.mu.Lock()
			p.events = append(p.events, ev)
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	// The snapshot says the stream is open: what follows is the session's events.
	p.waitFor("the snapshot", func(e pageEvent) bool { return e.Type == "snapshot" })
	return p
}

// waitFor waits for an event matching match from the start of the stream and
// returns its index.
func (p *page) waitFor(what string, match func(pageEvent) bool) int {
	p.t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		i := slices.IndexFunc(p.events, match)
		more := p.more
		p.mu.Unlock()
		if i >= 0 {
			return i
		}
		select {
		case <-more:
		case <-p.done:
			p.mu.Lock()
			i = slices.IndexFunc(p.events, match)
			p.mu.Unlock()
			if i < 0 {
				p.t.Fatalf("%s: the stream ended without %s; it had %v", p.name, what, p.labels())
			}
			return i
		case <-timeout.C:
			p.t.Fatalf("%s: no %s; the stream had %v", p.name, what, p.labels())
		}
	}
}

// waitLabel waits for the n-th (from 1) event of label.
func (p *page) waitLabel(label string, n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s #%d", label, n), func(e pageEvent) bool {
		if e.label() == label {
			n--
		}
		return n == 0
	})
}

// waitSubscribers waits for a subscribers event of count n.
func (p *page) waitSubscribers(n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("subscribers %d", n), func(e pageEvent) bool {
		return e.Type == sfu.EventSubscribers && string(e.Data) == fmt.Sprint(n)
	})
}

// ended waits for the stream to end.
func (p *page) ended() {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s: the stream is still open; it had %v", p.name, p.labels())
	}
}

func (p *page) labels() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.events))
	for _, e := range p.events {
		out = append(out, e.label())
	}
	return out
}

func (p *page) all() []pageEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// namedToken mints a token of role with a participant name.
func namedToken(t *testing.T, base, session, role, name string) string {
	t.Helper()
	code, body, _ := post(t, base+"/api/sessions/"+session+"/tokens", clusterAdmin, "application/json",
		`{"role":"`+role+`","name":"`+name+`"}`)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); code != http.StatusCreated || err != nil {
		t.Fatalf("mint %s %s: %d %s", role, name, code, body)
	}
	return tok.Token
}

// do sends a request with a token and returns the status and body.
func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req) // bounded: an event stream never ends by itself
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// whip publishes on url (placed: served by that node) and returns the
// publisher, playing until stop, and its WHIP resource's URL.
type whip struct {
	pub      *testpeer.Publisher
	stop     func()
	resource string
}

func publish(t *testing.T, ctx context.Context, base, path, token string) *whip {
	t.Helper()
	w := &whip{}
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, func(offer string) (string, error) {
		code, body, h := post(t, base+path, token, "application/sdp", offer)
		if code != http.StatusCreated {
			return "", fmt.Errorf("%s: %d %s", path, code, body)
		}
		w.resource = h.Get("Location")
		if strings.HasPrefix(w.resource, "/") {
			w.resource = base + w.resource
		}
		return body, nil
	})
	if err != nil {
		t.Fatalf("publishing %s: %v", path, err)
	}
	w.pub = pub
	w.stop = playSynthetic(ctx, pub)
	t.Cleanup(func() { w.stop(); pub.Close() })
	return w
}

func watch(t *testing.T, ctx context.Context, base, path, token string) *testpeer.Subscriber {
	t.Helper()
	s, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, sdpSignal(t, base+path, token), nil)
	if err != nil {
		t.Fatalf("subscribing %s: %v", path, err)
	}
	t.Cleanup(s.Close)
	return s
}

func waitPackets(t *testing.T, ctx context.Context, s *testpeer.Subscriber, track, more int, what string) {
	t.Helper()
	have, _, _ := s.Track(track).Snapshot()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.WaitPackets(ctx, track, have+more); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestClusterEventStreamsAgree: a lecture's events, as a page on the origin
// (hn-1, where the trainer publishes) and a page on an edge (hue-1, where the
// classrooms are) receive them. The trainer publishes, drops and comes back
// within the grace (publication.paused, .resumed: once each on both pages, the
// edge's own relay of it says nothing), a classroom on the edge raises its
// hand, is granted the floor on the origin, talks back from the edge, the
// trainer takes the floor back, the trainer leaves. Both pages must see the
// same events in the same order; the subscriber counts are the cluster's on
// both.
func TestClusterEventStreamsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("two nodes, a redis-server and WebRTC peers: not with -short")
	}
	rds := testenv.StartRedis(t)
	// The relayed copies' ends (below) come after the grace, once their sources have
	// released their claims (web's claimSettle, 10 s): as in a lecture.
	hnApp, hn := clusterApp(t, rds.URL(), "hn-1", "north", "-reconnect-grace", "15s")
	hueApp, hue := clusterApp(t, rds.URL(), "hue-1", "centre", "-reconnect-grace", "15s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := createSession(t, hn, clusterAdmin, "Bài giảng hai máy chủ")
	trainer := namedToken(t, hn, id, "trainer", "trainer")
	site := namedToken(t, hn, id, "site", "hue")
	origin := openPage(t, "the origin's page", hn, id, namedToken(t, hn, id, "viewer", "hn-hall"))
	edge := openPage(t, "the edge's page", hue, id, namedToken(t, hn, id, "viewer", "hue-hall"))
	both := func(f func(p *page)) {
		t.Helper()
		f(origin)
		f(edge)
	}

	// The trainer goes live on the origin; a classroom watches on the edge,
	// which relays the trainer's tracks (or the programme) from the origin.
	tr := publish(t, ctx, hn, "/whip/"+id+"?placed=1", trainer)
	both(func(p *page) { p.waitLabel(sfu.EventSessionLive, 1) })
	room := watch(t, ctx, hue, "/whep/"+id+"/trainer?placed=1", site)
	waitPackets(t, ctx, room, 0, 60, "the trainer's video on the edge")
	both(func(p *page) { p.waitSubscribers(1) })
	hall := watch(t, ctx, hn, "/whep/"+id+"/trainer?placed=1", namedToken(t, hn, id, "viewer", "hall"))
	both(func(p *page) { p.waitSubscribers(2) })
	hall.Close()
	both(func(p *page) { p.waitSubscribers(1) })

	// The trainer's connection drops (no WHIP DELETE) and comes back within the
	// grace: paused, resumed, once each on both pages.
	tr.stop()
	tr.pub.Close()
	both(func(p *page) { p.waitLabel(sfu.EventPublicationPaused+":trainer", 1) })
	tr = publish(t, ctx, hn, "/whip/"+id+"?placed=1", trainer)
	both(func(p *page) { p.waitLabel(sfu.EventPublicationResumed+":trainer", 1) })
	waitPackets(t, ctx, room, 0, 60, "the trainer's video on the edge after the trainer came back")

	// Talk-back: raised on the edge, granted on the origin, published on the
	// edge, taken back on the origin.
	if code, body := do(t, http.MethodPost, hue+"/api/sessions/"+id+"/hands", site); code != http.StatusOK {
		t.Fatalf("raise a hand on the edge: %d %s", code, body)
	}
	both(func(p *page) { p.waitLabel("hands", 1) })
	if code, body := do(t, http.MethodPut, hn+"/api/sessions/"+id+"/speakers/hue", trainer); code/100 != 2 {
		t.Fatalf("grant the floor on the origin: %d %s", code, body)
	}
	both(func(p *page) { p.waitLabel("speakers", 1); p.waitLabel("hands", 2) })
	talk := publish(t, ctx, hue, "/whip/"+id+"?placed=1", site)
	both(func(p *page) { p.waitLabel(sfu.EventPublicationAdded+":site-hue", 1) })
	if code, body := do(t, http.MethodDelete, hn+"/api/sessions/"+id+"/speakers/hue", trainer); code != http.StatusNoContent {
		t.Fatalf("take the floor back on the origin: %d %s", code, body)
	}
	both(func(p *page) { p.waitLabel("speakers", 2) })
	// The classroom's publication ends wherever it publishes (here: the edge).
	both(func(p *page) { p.waitLabel(sfu.EventPublicationRemoved+":site-hue", 1) })
	if _, ok := hueApp.registry.Session(id).Publication("site-hue"); ok {
		t.Error("the edge still carries the talk-back after the floor was taken back on the origin")
	}
	_ = talk

	// The trainer leaves (WHIP DELETE): the session ends on both pages.
	if code, body := do(t, http.MethodDelete, tr.resource, trainer); code/100 != 2 {
		t.Fatalf("the trainer's WHIP DELETE: %d %s", code, body)
	}
	both(func(p *page) { p.waitLabel(sfu.EventSessionEnded, 1) })
	room.Close()
	both(func(p *page) { p.waitSubscribers(0) })
	// The relayed copies (the trainer's on the edge, the talk-back's on the
	// origin) end after their relay and the grace: their sources said so
	// already, and the pages must not hear it twice.
	for _, n := range []struct {
		a   *app
		pub string
	}{{hueApp, "trainer"}, {hnApp, "site-hue"}} {
		testenv.WaitFor(ctx, t, n.pub+"'s relayed copy gone", func() bool {
			s, ok := n.a.registry.Lookup(id)
			if !ok {
				return true
			}
			_, ok = s.Publication(n.pub)
			return !ok
		})
		testenv.WaitFor(ctx, t, "the events bridge idle", func() bool { return n.a.cl.bridge.pending.Load() == 0 })
	}

	// A sentinel after everything: a hand raised once the lecture is over. What
	// both pages had before it is compared.
	if code, body := do(t, http.MethodPost, hue+"/api/sessions/"+id+"/hands", site); code != http.StatusOK {
		t.Fatalf("raise a hand after the lecture: %d %s", code, body)
	}
	both(func(p *page) { p.waitLabel("hands", 3) })
	seq := func(p *page) (labels []string, counts []string) {
		evs := p.all()
		last := 0
		for i, e := range evs {
			if e.Type == "hands" {
				last = i
			}
		}
		for _, e := range evs[1 : last+1] { // after the snapshot
			// The subscriber counts are compared apart: each node announces the
			// cluster's sum when its own round sees it change, so one page may
			// see a passing value the other's round did not.
			if e.Type == sfu.EventSubscribers {
				counts = append(counts, string(e.Data))
				continue
			}
			labels = append(labels, e.label())
		}
		return labels, counts
	}
	ol, oc := seq(origin)
	el, ec := seq(edge)
	t.Logf("origin: %v; counts %v", ol, oc)
	t.Logf("edge:   %v; counts %v", el, ec)
	if !slices.Equal(ol, el) {
		t.Errorf("the pages saw different events:\norigin %v\nedge   %v", ol, el)
	}
	for _, l := range [][]string{ol, el} {
		for _, what := range []string{sfu.EventPublicationPaused + ":trainer", sfu.EventPublicationResumed + ":trainer", sfu.EventSessionLive, sfu.EventSessionEnded} {
			if n := count(l, what); n != 1 {
				t.Errorf("%s %d times, want once: %v", what, n, l)
			}
		}
	}
	for _, c := range [][]string{oc, ec} {
		if len(c) == 0 || c[len(c)-1] != "0" || slices.Contains(c, "3") {
			t.Errorf("subscriber counts %v: want the cluster's (at most 2, 0 at the end)", c)
		}
	}
	if st := room.PC.ConnectionState(); st == webrtc.PeerConnectionStateFailed {
		t.Errorf("the classroom's connection failed: %s", st)
	}
}

func count(l []string, s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}

// TestClusterDeleteEndsEveryNode: deleting a session on one node ends it on
// every node, as a single node does: every page's event stream gets one last
// session.ended (deleted) and ends, the trainer's connection on the origin
// closes, the edge's relay and its session (the classroom's tracks) end. A deletion a
// node did not hear of (made straight in the shared catalogue, as when Redis
// lost the message) still ends its pages' streams, and its media, within a
// round of its loop.
func TestClusterDeleteEndsEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("two nodes, a redis-server and WebRTC peers: not with -short")
	}
	rds := testenv.StartRedis(t)
	hnApp, hn := clusterApp(t, rds.URL(), "hn-1", "north")
	hueApp, hue := clusterApp(t, rds.URL(), "hue-1", "centre")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := createSession(t, hn, clusterAdmin, "Xoá trên máy chủ khác")
	trainer := namedToken(t, hn, id, "trainer", "trainer")
	site := namedToken(t, hn, id, "site", "hue")
	origin := openPage(t, "the origin's page", hn, id, namedToken(t, hn, id, "viewer", "hn-hall"))
	edge := openPage(t, "the edge's page", hue, id, namedToken(t, hn, id, "viewer", "hue-hall"))
	// A session nothing is live in, watched on the edge only.
	idle := createSession(t, hn, clusterAdmin, "Chưa bắt đầu")
	idlePage := openPage(t, "the idle session's page", hue, idle, namedToken(t, hn, idle, "viewer", "hall"))

	tr := publish(t, ctx, hn, "/whip/"+id+"?placed=1", trainer)
	room := watch(t, ctx, hue, "/whep/"+id+"/trainer?placed=1", site)
	waitPackets(t, ctx, room, 0, 60, "the trainer's video on the edge")
	edge.waitLabel(sfu.EventSessionLive, 1)

	// Deleted on the edge (the admin's API call may reach any node).
	if code, body := do(t, http.MethodDelete, hue+"/api/sessions/"+id, clusterAdmin); code != http.StatusNoContent {
		t.Fatalf("delete on the edge: %d %s", code, body)
	}
	deleted := func(e pageEvent) bool {
		return e.Type == sfu.EventSessionEnded && strings.Contains(string(e.Data), `"deleted":true`)
	}
	for _, p := range []*page{origin, edge} {
		i := p.waitFor("session.ended (deleted)", deleted)
		p.ended()
		if evs := p.all(); i != len(evs)-1 {
			t.Errorf("%s: events after the deletion: %v", p.name, p.labels())
		}
	}
	testenv.WaitFor(ctx, t, "the trainer's connection closed by the origin", func() bool {
		st := tr.pub.PC.ConnectionState()
		return st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected
	})
	// The classroom's tracks end with the edge's session (its connection is left
	// as a single node leaves a deleted session's subscribers: the page closes it
	// on the deletion's session.ended).
	for name, a := range map[string]*app{"origin": hnApp, "edge": hueApp} {
		testenv.WaitFor(ctx, t, "the session gone from the "+name+"'s registry", func() bool {
			_, ok := a.registry.Lookup(id)
			return !ok
		})
	}
	testenv.WaitFor(ctx, t, "the edge's relay ended", func() bool { return len(hueApp.cl.relays.Relays()) == 0 })
	testenv.WaitFor(ctx, t, "the origin's relay out ended", func() bool { return len(hnApp.cl.origin.Relays()) == 0 })
	if code, _ := do(t, http.MethodGet, hn+"/api/sessions/"+id+"/events", site); code != http.StatusNotFound {
		t.Errorf("a page reconnecting to the deleted session: %d, want 404", code)
	}

	// The idle session is deleted behind the nodes' backs (straight in the
	// catalogue: no node's API, no event): the edge's loop ends its page.
	cat := hnApp.catalog
	if err := cat.Delete(idle); err != nil {
		t.Fatal(err)
	}
	idlePage.waitFor("session.ended (deleted) without the event", deleted)
	idlePage.ended()
}
