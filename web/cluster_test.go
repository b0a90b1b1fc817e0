package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/redis/go-redis/v9"

	"lectern/auth"
	"lectern/catalog"
	"lectern/cluster"
	"lectern/cluster/relay"
	"lectern/floor"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
)

// The cluster's request paths (cluster.go) with three real nodes in this
// process, each a full web stack on its own loopback port with its own WebRTC
// edge, coordinated by a real redis-server (issue 13).

// clusterBeat is the tests' heartbeat: a node's keys expire after 3 of them.
const clusterBeat = 200 * time.Millisecond

// relayLinger is how long the tests' relays outlive their last local consumer.
const relayLinger = 2 * time.Second

// clusterNode is one Lectern node of a test cluster.
type clusterNode struct {
	*stack
	id     string
	web    *Server
	cl     *cluster.Cluster
	relays *relay.Manager
	origin *relay.Handler
	rtsp   string // the RTSP server's address
	kill   func()
	full   atomic.Bool // the node says it takes no more subscribers (placement)
}

// newClusterNode starts node id of region on its own port, sharing the session
// definitions (catalog in Redis), the token secret and the floor with the other
// nodes. kill stops it as a shutdown does (also at the test's end).
func newClusterNode(t *testing.T, rds *testenv.Redis, id, region string, pages http.Handler) *clusterNode {
	t.Helper()
	_, log, broker := newStackBase(t)
	log = log.With("node", id)
	opt, err := redis.ParseURL(rds.URL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	cat, err := catalog.OpenRedis(catalog.RedisConfig{Client: rc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	// The nodes' subscriber counts are the cluster's (cluster.go announces
	// them): a node's own count is not sent to its pages.
	onEvent := func(session, typ string, data any) {
		if typ != sfu.EventSubscribers {
			broker.Publish(session, typ, data)
		}
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: 10 * time.Second, OnEvent: onEvent, Logger: log})
	edge, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := auth.NewIssuer(testSecret)
	n := &clusterNode{id: id}
	cl, err := cluster.Open(context.Background(), cluster.Config{RedisURL: rds.URL(), NodeID: id, Region: region,
		PublicURL: url, Heartbeat: clusterBeat, Logger: log, Load: func() cluster.Load {
			_, _, subs := reg.Counts()
			if n.full.Load() {
				subs = 100
			}
			return cluster.Load{Subscribers: subs, MaxSubscribers: 100}
		}})
	if err != nil {
		t.Fatal(err)
	}
	relays := relay.New(relay.Config{Registry: reg, Edge: edge, Issuer: issuer, NodeID: id, Logger: log, Linger: relayLinger})
	origin := relay.NewHandler(relay.ServerConfig{Registry: reg, Edge: edge, Issuer: issuer, Logger: log})
	h, err := New(Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer, AdminToken: testAdmin,
		PublicURL: url, Logger: log, Cluster: cl, Relays: relays, RelayOrigin: origin, Pages: pages,
		NewFloor: func(hook func(floor.Event)) floor.Floor { return cluster.NewFloor(cl, hook) }})
	if err != nil {
		t.Fatal(err)
	}
	rtspSrv, err := rtsp.NewServer(rtsp.Config{Address: "127.0.0.1:0", Tokens: issuer, AdminToken: testAdmin, Logger: log,
		Prepare: h.Prepare, Sessions: func(id string) (*sfu.Session, error) {
			if _, err := cat.Get(id); err != nil {
				return nil, err
			}
			return reg.Session(id), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rtspSrv.Start(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = h.Close()
			_ = relays.Close()
			_ = origin.Close()
			broker.Close() // ends the event streams, so that the server's Close does not wait for them
			srv.CloseClientConnections()
			srv.Close()
			_ = rtspSrv.Close()
			_ = cl.Close()
			reg.CloseAll()
			_ = edge.Close()
			_ = rc.Close()
			cancel()
		})
	}
	t.Cleanup(kill)
	n.stack = &stack{t: t, url: url, reg: reg, edge: edge, issuer: issuer, ctx: ctx}
	n.web, n.cl, n.relays, n.origin, n.rtsp, n.kill = h, cl, relays, origin, rtspSrv.Addr(), kill
	return n
}

// newCluster starts nodes a (region north), b (centre) and c (south), serving
// the web pages when pages is set.
func newCluster(t *testing.T, pages ...http.Handler) (rds *testenv.Redis, a, b, c *clusterNode) {
	t.Helper()
	if testing.Short() {
		t.Skip("three nodes and a redis-server: not with -short")
	}
	t.Cleanup(waitRedisProbes) // registered first: runs after every node is closed
	rds = testenv.StartRedis(t)
	var p http.Handler
	if len(pages) > 0 {
		p = pages[0]
	}
	a = newClusterNode(t, rds, "a", "north", p)
	b = newClusterNode(t, rds, "b", "centre", p)
	c = newClusterNode(t, rds, "c", "south", p)
	return rds, a, b, c
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// post sends an SDP offer (or anything) with a client that does not follow
// redirects.
func (n *clusterNode) post(path, token, contentType, body string) (*http.Response, string) {
	n.t.Helper()
	req, err := http.NewRequestWithContext(n.ctx, "POST", n.url+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := noRedirect.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// play publishes a synthetic lecture through p until the test ends.
func play(t *testing.T, ctx context.Context, p *testpeer.Publisher) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Play(ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 3000), nil) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
}

// publish connects a publisher at path with token and plays a synthetic lecture
// through it until the test ends.
func (n *clusterNode) publish(path, token string) *testpeer.Publisher {
	n.t.Helper()
	p, err := testpeer.NewPublisher(n.ctx, testpeer.Options{}, false, n.signal(path, token, nil))
	if err != nil {
		n.t.Fatalf("publishing %s on %s: %v", path, n.id, err)
	}
	play(n.t, n.ctx, p)
	return p
}

// subscribe connects a subscriber (a video and an audio section) at path with
// token; it closes when the test ends.
func (n *clusterNode) subscribe(path, token string) *testpeer.Subscriber {
	n.t.Helper()
	s, err := testpeer.NewSubscriber(n.ctx, testpeer.Options{}, 1, 1, n.signal(path, token, nil), nil)
	if err != nil {
		n.t.Fatalf("subscribing on %s: %v", n.id, err)
	}
	n.t.Cleanup(s.Close)
	return s
}

// seqGaps counts the sequence numbers missing between the first and the last
// received (wrap-around unrolled; duplicates and reordering do not count).
func seqGaps(seqs []uint16) int {
	if len(seqs) == 0 {
		return 0
	}
	seen := map[int64]bool{}
	cur := int64(seqs[0])
	lo, hi := cur, cur
	for i, s := range seqs {
		if i > 0 {
			cur += int64(int16(s - seqs[i-1]))
		}
		seen[cur] = true
		lo, hi = min(lo, cur), max(hi, cur)
	}
	return int(hi-lo+1) - len(seen)
}

// waitMore waits until track i of sub has received n more packets than now.
func waitMore(t *testing.T, ctx context.Context, sub *testpeer.Subscriber, i, n int, what string) {
	t.Helper()
	have, _, _ := sub.Track(i).Snapshot()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := sub.WaitPackets(ctx, i, have+n); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// checkContinuous fails unless every track of sub has received packets with
// no sequence number missing.
func checkContinuous(t *testing.T, sub *testpeer.Subscriber, tracks int, who string) {
	t.Helper()
	for i := range tracks {
		n, _, seqs := sub.Track(i).Snapshot()
		if gaps := seqGaps(seqs); n == 0 || gaps != 0 {
			t.Errorf("%s, track %d: %d packets, %d sequence numbers missing", who, i, n, gaps)
		}
	}
}

// relaysOut lists A's relays served, as "peer/publication".
func relaysOut(n *clusterNode) []string {
	var out []string
	for _, r := range n.origin.Relays() {
		out = append(out, r.Peer+"/"+r.Publication)
	}
	slices.Sort(out)
	return out
}

// TestClusterLecture: a lecture over three nodes. The trainer publishes on A;
// classrooms watch on B and C, which each pull the trainer's tracks from A once;
// every node's pages count every node's classrooms; Redis restarts and media
// keeps flowing; A dies, the trainer republishes on B, and C's classroom keeps
// its connection and its tracks; C dies, its classroom reconnects to B.
func TestClusterLecture(t *testing.T) {
	rds, a, b, c := newCluster(t)
	id := a.createSession("Bài giảng toàn quốc")
	trainer := a.token(id, auth.RoleTrainer, "trainer")
	viewer := a.token(id, auth.RoleViewer, "hall")

	a.publish("/whip/"+id+"?region=north", trainer)
	if p, ok := a.reg.Session(id).Publication(sfu.TrainerPublication); !ok || p.Relayed() {
		t.Fatalf("the trainer's publication is not sourced on A")
	}

	// Two classrooms on B, one on C.
	b1 := b.subscribe("/whep/"+id+"?region=centre", viewer)
	b2 := b.subscribe("/whep/"+id+"?region=centre", viewer)
	c1 := c.subscribe("/whep/"+id+"?region=south", viewer)
	for _, s := range []*testpeer.Subscriber{b1, b2, c1} {
		waitMore(t, a.ctx, s, 0, 100, "video through an edge")
		waitMore(t, a.ctx, s, 1, 50, "audio through an edge")
	}
	if got, want := relaysOut(a), []string{"b/trainer", "c/trainer"}; !slices.Equal(got, want) {
		t.Fatalf("A serves relays %v, want exactly one per edge %v", got, want)
	}
	for _, n := range []*clusterNode{b, c} {
		if p, ok := n.reg.Session(id).Publication(sfu.TrainerPublication); !ok || !p.Relayed() {
			t.Fatalf("%s: the trainer's publication is not a relay", n.id)
		}
	}

	// The pages of every node count every node's subscribers.
	ev := b.subscribeEvents(id, viewer)
	c2 := c.subscribe("/whep/"+id+"?region=south", viewer)
	ev.waitFor(t, sfu.EventSubscribers, "4")
	c2.Close()
	ev.waitFor(t, sfu.EventSubscribers, "3")
	var st sessionState
	if resp, body := c.do("GET", "/api/sessions/"+id, viewer, "", ""); resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("session state on C: %d %s", resp.StatusCode, body)
	}
	if st.Subscribers != 3 || !st.Live {
		t.Fatalf("C says %d subscribers, live %v; want 3 over the cluster, live", st.Subscribers, st.Live)
	}

	// Redis restarts mid-lecture: the media keeps flowing meanwhile.
	rds.Stop()
	for _, s := range []*testpeer.Subscriber{b1, c1} {
		waitMore(t, a.ctx, s, 1, 50, "audio while Redis is down")
	}
	// A new cross-node join needs Redis: refused with the reason.
	d := a.token(id, auth.RoleViewer, "late")
	if resp, body := c.post("/whep/"+id+"/site-none?placed=1", d, "application/sdp", "v=0"); resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(body, "Redis") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a cross-node join with Redis down: %d %s", resp.StatusCode, body)
	}
	rds.Restart()
	testenv.WaitFor(a.ctx, t, "the nodes back in Redis", func() bool {
		nodes, err := a.cl.Nodes(a.ctx)
		return err == nil && len(nodes) == 3
	})
	for _, s := range []*testpeer.Subscriber{b1, b2, c1} {
		waitMore(t, a.ctx, s, 0, 60, "video after Redis came back")
	}
	for who, s := range map[string]*testpeer.Subscriber{"b1": b1, "b2": b2, "c1": c1} {
		checkContinuous(t, s, 2, who)
	}

	// A dies; the trainer's client republishes on B, the new origin. C's
	// classroom keeps its connection; its tracks go on.
	a.kill()
	repub, err := publishRetrying(b, "/whip/"+id+"?region=centre", trainer)
	if err != nil {
		t.Fatalf("the trainer republishing on B: %v", err)
	}
	play(t, b.ctx, repub)
	if p, ok := b.reg.Session(id).Publication(sfu.TrainerPublication); !ok || p.Relayed() {
		t.Fatalf("B is not the trainer's source after the republish")
	}
	for _, s := range []*testpeer.Subscriber{b1, c1} {
		waitMore(t, b.ctx, s, 0, 100, "video from the new origin")
	}
	if st := c1.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("C's classroom: connection %s after the origin moved", st)
	}
	checkContinuous(t, c1, 1, "C's classroom across the origin's move") // video: the rewriter continues the sequence
	if got, want := relaysOut(b), []string{"c/trainer"}; !slices.Contains(got, want[0]) {
		t.Fatalf("B serves relays %v, want one for C's trainer", got)
	}

	// C dies; its classroom reconnects to B and plays.
	c.kill()
	again := b.subscribe("/whep/"+id+"?region=south", viewer)
	waitMore(t, b.ctx, again, 0, 60, "the classroom of C, reconnected to B")
}

// TestClusterTalkBack: a classroom on C takes the floor (raised on C, granted on
// A: the floor is the cluster's), publishes on C, and is heard on the origin A,
// which pulls it by itself (its programme mixes the floor), and on the edge B.
func TestClusterTalkBack(t *testing.T) {
	_, a, b, c := newCluster(t)
	id := a.createSession("Hỏi đáp")
	trainer := a.token(id, auth.RoleTrainer, "trainer")
	viewer := a.token(id, auth.RoleViewer, "hall")
	site := a.token(id, auth.RoleSite, "hue")
	a.publish("/whip/"+id+"?region=north", trainer)
	onB := b.subscribe("/whep/"+id+"?region=centre", viewer)
	waitMore(t, a.ctx, onB, 1, 50, "the trainer's audio on B")

	// Talk-back: the classroom "hue", on C, raises its hand there; the trainer
	// grants it the floor on A; it publishes on C and is heard on A and B.
	if resp, body := c.do("POST", "/api/sessions/"+id+"/hands", site, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("raise hand on C: %d %s", resp.StatusCode, body)
	}
	if resp, body := a.do("PUT", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode/100 != 2 {
		t.Fatalf("grant the floor on A: %d %s", resp.StatusCode, body)
	}
	c.publish("/whip/"+id+"?region=south", site)
	// The origin pulls it by itself (its programme mixes the floor).
	testenv.WaitFor(a.ctx, t, "A relays the classroom's talk-back", func() bool {
		p, ok := a.reg.Session(id).Publication("site-hue")
		return ok && p.Relayed() && len(p.Tracks()) == 2
	})
	// The origin keeps it with no classroom of its own watching: its programme
	// mixes it (a relay otherwise ends after its linger without consumers).
	started := relayStarted(a, id, "site-hue")
	for end := time.Now().Add(3 * relayLinger); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if now := relayStarted(a, id, "site-hue"); !now.Equal(started) {
			t.Fatalf("A's relay of the talk-back ended (started %v, now %v) with no local classroom", started, now)
		}
	}
	heardA := a.subscribe("/whep/"+id+"/site-hue?region=north", viewer)
	heardB := b.subscribe("/whep/"+id+"/site-hue?region=centre", viewer)
	for _, s := range []*testpeer.Subscriber{heardA, heardB} {
		waitMore(t, a.ctx, s, 1, 50, "the classroom's audio")
		waitMore(t, a.ctx, s, 0, 100, "the classroom's video")
	}
	waitMore(t, a.ctx, onB, 0, 100, "the trainer's video on B meanwhile")
	checkContinuous(t, heardB, 2, "the classroom on B")

}

// TestClusterRTSPEdge: an RTSP reader of a session live on another node is
// served by the node it asks (its Prepare pulls the trainer's tracks), and a
// reader of a publication whose node is gone gets 503 with the reason.
func TestClusterRTSPEdge(t *testing.T) {
	rds, a, _, c := newCluster(t)
	id := a.createSession("RTSP")
	trainer := a.token(id, auth.RoleTrainer, "trainer")
	site := a.token(id, auth.RoleSite, "vinh")
	a.publish("/whip/"+id+"?region=north", trainer)

	rc, desc, err := testenv.DescribeRTSP(t, "rtsp://"+c.rtsp+"/"+id+"?token="+site, 30*time.Second)
	defer rc.Close()
	if err != nil {
		t.Fatalf("DESCRIBE on C of a session live on A: %v", err)
	}
	if err := rc.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[description.MediaType]int{}
	rc.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		mu.Lock()
		got[m.Type]++
		mu.Unlock()
	})
	if _, err := rc.Play(nil); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(a.ctx, t, "the trainer's video and audio over RTSP on C", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[description.MediaTypeVideo] > 60 && got[description.MediaTypeAudio] > 30
	})
	if p, ok := c.reg.Session(id).Publication(sfu.TrainerPublication); !ok || !p.Relayed() {
		t.Fatal("C serves the reader without relaying the trainer")
	}

	// Node d sources a classroom's publication but nothing answers at its URL.
	claimUnreachable(t, rds, id, "site-vinh")
	rc2, _, err := testenv.DescribeRTSP(t, "rtsp://"+c.rtsp+"/"+id+"/site-vinh?token="+site, 30*time.Second)
	defer rc2.Close()
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "origin node d unreachable") {
		t.Fatalf("RTSP reader of a publication whose origin is unreachable: %v", err)
	}
}

// claimUnreachable makes node d, alive in Redis with nothing answering at its
// URL, the source of a publication of session; d leaves at the test's end.
func claimUnreachable(t *testing.T, rds *testenv.Redis, session, publication string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	d, err := cluster.Open(context.Background(), cluster.Config{RedisURL: rds.URL(), NodeID: "d", Region: "south",
		PublicURL: dead, Heartbeat: clusterBeat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.ClaimPublication(context.Background(), session, publication); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserClusterRedirect: the studio goes live in Chromium on A; a
// classroom's page loaded from B, which is full, has its WHEP offer placed on C
// (307, the token in the query as Chromium drops Authorization across origins);
// its trickle ICE goes to C (the resource's Location names C) and it decodes the
// studio's video relayed A -> C.
func TestBrowserClusterRedirect(t *testing.T) {
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	_, a, b, c := newCluster(t, pages)
	id := a.createSession("Bài giảng qua ba máy chủ")
	trainer := a.token(id, auth.RoleTrainer, "trainer")
	hue := a.token(id, auth.RoleSite, "hue")

	br := newBrowser(t)
	studio := br.tab("cluster-studio")
	studio.open(a.url + "/studio/" + id + "?token=" + trainer)
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)
	if p, ok := a.reg.Session(id).Publication(sfu.TrainerPublication); !ok || p.Relayed() {
		t.Fatal("the studio does not publish on A")
	}

	a.full.Store(true) // placement sends new classrooms elsewhere: C
	b.full.Store(true)
	room := br.tab("cluster-room")
	room.open(b.url + "/room/" + id + "?token=" + hue)
	room.waitRising("main.framesDecoded", 20, 40*time.Second)
	room.waitRising("main.audioPackets", 20, 10*time.Second)
	var resource string
	if err := room.eval(`window.lectern.health().then(h => h.main.resource)`, &resource); err != nil || !strings.HasPrefix(resource, c.url+"/whep/"+id+"/") {
		t.Fatalf("the classroom's WHEP resource %q (%v), want one of C (%s)", resource, err, c.url)
	}
	if p, ok := c.reg.Session(id).Publication(sfu.TrainerPublication); !ok || !p.Relayed() {
		t.Fatal("C plays the classroom without relaying the studio")
	}
	if _, _, subs := b.reg.Counts(); subs != 0 {
		t.Fatalf("B, full, serves %d subscribers", subs)
	}
	room.screenshot("cluster-room")
	room.noConsoleErrors()
}

// relayStarted is when n's relay of publication began (zero: none).
func relayStarted(n *clusterNode, session, publication string) time.Time {
	for _, r := range n.relays.Relays() {
		if r.Session == session && r.Publication == publication {
			return r.Started
		}
	}
	return time.Time{}
}

// publishRetrying publishes on n, as a WHIP client does after its node died:
// it retries while the cluster still names the dead node (307) or cannot say
// (503).
func publishRetrying(n *clusterNode, path, token string) (*testpeer.Publisher, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	for {
		p, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, func(offer string) (string, error) {
			resp, body := n.post(path, token, "application/sdp", offer)
			if resp.StatusCode != http.StatusCreated {
				return "", fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, body)
			}
			return body, nil
		})
		if err == nil || ctx.Err() != nil {
			return p, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterRefusals: bad input at the cluster's edges.
func TestClusterRefusals(t *testing.T) {
	rds, a, b, _ := newCluster(t)
	id := a.createSession("Refusals")
	trainer := a.token(id, auth.RoleTrainer, "trainer")
	viewer := a.token(id, auth.RoleViewer, "hall")

	t.Run("node credential", func(t *testing.T) {
		forged, _ := auth.NewIssuer([]byte("another-cluster-secret-0123456789"))
		forgedNode, err := forged.MintNode("b")
		if err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{"missing": "", "forged": forgedNode, "a viewer's token": viewer} {
			resp, body := a.do("GET", "/cluster/relay/"+id+"/trainer", tok, "", "")
			if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(body) == "" {
				t.Errorf("%s node credential: %d %q, want 401 with a reason", name, resp.StatusCode, body)
			}
		}
		good, _ := a.issuer.MintNode("b")
		if resp, body := a.do("GET", "/cluster/relay/"+id+"/trainer", good, "", ""); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("a good node credential refused: %s", body)
		}
	})

	t.Run("origin unreachable", func(t *testing.T) {
		claimUnreachable(t, rds, id, "site-vinh") // node d: nothing answers at its URL
		resp, body := b.post("/whep/"+id+"/site-vinh?placed=1", viewer, "application/sdp", "v=0")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "origin node d unreachable") ||
			resp.Header.Get("Retry-After") == "" {
			t.Fatalf("WHEP of a publication whose origin is unreachable: %d %s (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		if _, ok := b.reg.Session(id).Publication("site-vinh"); ok {
			t.Fatal("a publication left behind by the failed pull")
		}
		// B still serves: a publication live nowhere is answered as on one node.
		if resp, body := b.post("/whep/"+id+"/site-nobody?placed=1", viewer, "application/sdp", "v=0"); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("after the refusal: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("two nodes claim the trainer", func(t *testing.T) {
		offer := offerSDP(t)
		type answer struct {
			node *clusterNode
			resp *http.Response
		}
		answers := make(chan answer, 2)
		for _, n := range []*clusterNode{a, b} {
			go func() {
				resp, _ := n.post("/whip/"+id+"?placed=1", trainer, "application/sdp", offer)
				answers <- answer{n, resp}
			}()
		}
		var won, lost []answer
		for range 2 {
			x := <-answers
			switch x.resp.StatusCode {
			case http.StatusCreated:
				won = append(won, x)
			case http.StatusTemporaryRedirect:
				lost = append(lost, x)
			default:
				t.Fatalf("%s: %d", x.node.id, x.resp.StatusCode)
			}
		}
		if len(won) != 1 || len(lost) != 1 {
			t.Fatalf("%d nodes took the trainer, %d redirected; want one each", len(won), len(lost))
		}
		want := won[0].node.url + "/whip/" + id + "?placed=1&token=" + trainer
		if loc := lost[0].resp.Header.Get("Location"); loc != want {
			t.Fatalf("the loser redirects to %q, want the winner %q", loc, want)
		}
		// Deterministic from then on: the loser keeps sending the trainer there.
		if resp, _ := lost[0].node.post("/whip/"+id+"?placed=1", trainer, "application/sdp", offer); resp.StatusCode != http.StatusTemporaryRedirect ||
			resp.Header.Get("Location") != want {
			t.Fatalf("again on the loser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("redis down", func(t *testing.T) {
		other := a.createSession("Another")
		tok := a.token(other, auth.RoleTrainer, "trainer")
		if resp, body := b.do("GET", "/api/sessions/"+other, tok, "", ""); resp.StatusCode != http.StatusOK { // B reads it
			t.Fatalf("the session on B: %d %s", resp.StatusCode, body)
		}
		rds.Stop()
		defer rds.Restart()
		resp, body := b.post("/whip/"+other+"?placed=1", tok, "application/sdp", offerSDP(t))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Redis") || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("WHIP with Redis down: %d %s", resp.StatusCode, body)
		}
	})
}

// TestClusterPlacement: a WHIP/WHEP POST is sent to a node of the client's
// region, or to a less loaded node; never twice, never the relays.
func TestClusterPlacement(t *testing.T) {
	_, a, b, c := newCluster(t)
	id := a.createSession("Placement")
	viewer := a.token(id, auth.RoleViewer, "hall")
	for _, tc := range []struct {
		node       *clusterNode
		query, hdr string
		want       *clusterNode // nil: served here
	}{
		{a, "?region=south", "", c},
		{a, "", "centre", b},
		{c, "?region=south", "", nil},
		{a, "?region=south&placed=1", "", nil},
		{b, "?region=nowhere", "", nil}, // no node there: the least loaded, all equal here
	} {
		req, _ := http.NewRequestWithContext(tc.node.ctx, "POST", tc.node.url+"/whep/"+id+tc.query, strings.NewReader("v=0"))
		req.Header.Set("Authorization", "Bearer "+viewer)
		req.Header.Set("Content-Type", "application/sdp")
		if tc.hdr != "" {
			req.Header.Set(regionHeader, tc.hdr)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case tc.want == nil && resp.StatusCode == http.StatusTemporaryRedirect:
			t.Errorf("%s%s: redirected to %s, want served there", tc.node.id, tc.query, resp.Header.Get("Location"))
		case tc.want != nil && (resp.StatusCode != http.StatusTemporaryRedirect ||
			!strings.HasPrefix(resp.Header.Get("Location"), tc.want.url+"/whep/"+id+"?") ||
			!strings.Contains(resp.Header.Get("Location"), "placed=1") ||
			!strings.Contains(resp.Header.Get("Location"), "token="+viewer)): // browsers drop Authorization across origins
			t.Errorf("%s%s %s: %d %q, want 307 to %s, placed", tc.node.id, tc.query, tc.hdr, resp.StatusCode, resp.Header.Get("Location"), tc.want.id)
		}
	}
	// Following the redirect works end to end (the token goes along).
	resp, body := a.do("POST", "/whep/"+id+"/nothing?region=south", viewer, "application/sdp", "v=0")
	if resp.StatusCode != http.StatusNotFound || resp.Request.URL.Host != strings.TrimPrefix(c.url, "http://") {
		t.Fatalf("followed: %d %s at %s", resp.StatusCode, body, resp.Request.URL)
	}
	// The relays are never placed: a node's request to another node is served.
	node, _ := a.issuer.MintNode("c")
	if resp, _ := a.do("GET", "/cluster/relay/"+id+"/trainer?region=south", node, "", ""); resp.StatusCode == http.StatusTemporaryRedirect {
		t.Fatal("a relay request was redirected")
	}
}

// offerSDP returns a real recvonly-and-sendonly offer a WHIP/WHEP endpoint
// accepts.
func offerSDP(t *testing.T) string {
	t.Helper()
	pc, offer := testpeer.NewOffer(t, testpeer.Options{}, webrtc.RTPTransceiverDirectionSendonly)
	t.Cleanup(func() { _ = pc.Close() })
	return offer.SDP
}

// waitRedisProbes waits for go-redis's dial probes to end: a client whose
// dials failed (Redis was stopped) probes in a goroutine of its own, which
// sees its pool closed within a second of sleep, after the test.
func waitRedisProbes() {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "pool.(*ConnPool).tryDial") {
			return
		}
	}
}
