package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"lectern/internal/clip"
	"lectern/internal/testpeer"
)

// bench is one run: a session, its publisher and the subscribers so far.
type bench struct {
	cfg     config
	log     *slog.Logger
	api     *apiClient
	pid     string
	session string
	sh      *shared
	pub     *publisher
	subs    []*subscriber
	joined  int // subscribers ever started, for token names

	// nodes are the servers measured: the subscribers' nodes in -url order, then
	// the publish node when it is not one of them. One server: just it.
	nodes []*benchNode
	next  int // the subscribers' node to give the next one (round-robin)
}

// benchNode is one server of the run.
type benchNode struct {
	url       string
	api       *apiClient
	pid       string
	subscribe bool // subscribers play from it
	latency   histogram
}

// openNodes finds every node's pid; b.api is the publish node's client.
func (b *bench) openNodes(cfg config) error {
	for _, u := range cfg.Nodes {
		b.nodes = append(b.nodes, &benchNode{url: u, api: newAPIClient(u, cfg.AdminToken), subscribe: true})
	}
	if !slices.Contains(cfg.Nodes, cfg.URL) {
		b.nodes = append(b.nodes, &benchNode{url: cfg.URL, api: newAPIClient(cfg.URL, cfg.AdminToken)})
	}
	for _, n := range b.nodes {
		pid := cfg.ServerPID // only with one node
		if pid == 0 {
			var err error
			if pid, err = listenerPID(n.url); err != nil {
				return fmt.Errorf("finding the pid of %s: %w", n.url, err)
			}
		}
		n.pid = strconv.Itoa(pid)
		if n.url == cfg.URL {
			b.api, b.pid = n.api, n.pid
		}
	}
	return nil
}

// pids returns the distinct pids of the nodes (several URLs of one process count once).
func (b *bench) pids() []string {
	var out []string
	for _, n := range b.nodes {
		if !slices.Contains(out, n.pid) {
			out = append(out, n.pid)
		}
	}
	return out
}

// pickNode returns the index of the node the next subscriber plays from.
func (b *bench) pickNode() int {
	for {
		i := b.next % len(b.nodes)
		b.next++
		if b.nodes[i].subscribe {
			return i
		}
	}
}

// run measures every step and prints a table row per step to table.
func run(ctx context.Context, cfg config, log *slog.Logger, table io.Writer) (*report, error) {
	if cfg.Mode == modeAdapt {
		return nil, runAdapt(ctx, cfg, log, table)
	}
	b, pid, done, err := open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer done()

	rep := &report{Server: pid, Session: b.session, Clip: cfg.Clip, Hold: cfg.Hold.String(), Mode: cfg.Mode, Simulcast: cfg.Simulcast}
	// The server's keyframe cache needs one keyframe before anyone joins.
	if err := sleep(ctx, max(cfg.Settle, time.Duration(cfg.Clip.GOP)*time.Second/time.Duration(cfg.Clip.FPS))); err != nil {
		return rep, err
	}
	log.Info("measuring the baseline: publisher only", "server_pid", pid, "session", b.session)
	baseHold := cfg.BaseHold
	if baseHold <= 0 {
		baseHold = 10 * time.Second
	}
	base, err := b.measure(ctx, min(cfg.Hold, baseHold), nil)
	if err != nil {
		return rep, err
	}
	rep.Baseline = base
	printHeader(table)
	printRow(table, base)
	printNodes(table, base)
	for _, n := range cfg.Steps {
		st, err := b.step(ctx, n, &base)
		if err != nil {
			return rep, err
		}
		if len(rep.Steps) > 0 {
			st.addedSince(rep.Steps[0])
		}
		rep.Steps = append(rep.Steps, st)
		printRow(table, st)
		printNodes(table, st)
	}
	rep.KeyframeRequestsIgnored = b.pub.keyframeRequests()
	rep.TimestampOffsets = b.sh.offsets.Load()
	rep.evaluate()
	printSummary(table, rep)
	return rep, nil
}

// open finds the server, makes the lecture's clips, starts the publisher and its
// playing; done stops them and every subscriber.
func open(ctx context.Context, cfg config, log *slog.Logger) (b *bench, pid int, done func(), err error) {
	b = &bench{cfg: cfg, log: log, sh: &shared{sent: newSendLog()}}
	if err = b.openNodes(cfg); err != nil {
		return nil, 0, nil, err
	}
	pid, _ = strconv.Atoi(b.pid)
	var c *clip.Clip
	var layers []*clip.Clip
	if cfg.Simulcast {
		for _, o := range testpeer.SimulcastClipOptions(cfg.Clip.Duration) {
			log.Info("generating (or loading) a simulcast layer's clip", "dir", cfg.CacheDir, "size", fmt.Sprintf("%dx%d", o.Width, o.Height),
				"fps", o.FPS, "bitrate", o.Bitrate, "gop", o.GOP)
			l, err := clip.Generate(ctx, cfg.CacheDir, o)
			if err != nil {
				return nil, 0, nil, err
			}
			layers = append(layers, l)
		}
	} else {
		log.Info("generating (or loading) the lecture clip", "dir", cfg.CacheDir, "size", fmt.Sprintf("%dx%d", cfg.Clip.Width, cfg.Clip.Height),
			"fps", cfg.Clip.FPS, "bitrate", cfg.Clip.Bitrate, "gop", cfg.Clip.GOP)
		if c, err = clip.Generate(ctx, cfg.CacheDir, cfg.Clip); err != nil {
			return nil, 0, nil, err
		}
	}
	if err := b.start(ctx, layers); err != nil {
		b.stop()
		return nil, 0, nil, err
	}
	playCtx, stopPlay := context.WithCancel(ctx)
	played := make(chan error, 1)
	go func() { played <- b.pub.play(playCtx, c) }()
	return b, pid, func() {
		stopPlay()
		<-played
		b.stop()
	}, nil
}

// step brings the subscribers up to n, lets them settle and measures.
func (b *bench) step(ctx context.Context, n int, base *step) (step, error) {
	before, err := b.counters(ctx)
	if err != nil {
		return step{}, err
	}
	udpBefore, _ := udpRcvbufErrors()
	joins, failed, err := b.grow(ctx, n)
	if err != nil {
		return step{}, err
	}
	after, err := b.counters(ctx)
	if err != nil {
		return step{}, err
	}
	udpAfter, _ := udpRcvbufErrors()
	if err := sleep(ctx, b.cfg.Settle); err != nil {
		return step{}, err
	}
	st, err := b.measure(ctx, b.cfg.Hold, base)
	if err != nil {
		return step{}, err
	}
	st.JoinFailed = failed
	st.setJoins(joins)
	st.JoinServer = after.sub(before)
	st.JoinUDPBufDrops = udpAfter - udpBefore
	return st, nil
}

// listenerPID returns the pid listening on rawURL's port.
func listenerPID(rawURL string) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	return findListener(host)
}

// start creates the session (unless given) and connects the publisher: a simulcast
// one if layers are given.
func (b *bench) start(ctx context.Context, layers []*clip.Clip) error {
	b.session = b.cfg.Session
	if b.session == "" {
		id, err := b.api.createSession(ctx, "lectern-bench "+time.Now().Format(time.RFC3339))
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		b.session = id
	}
	tok, err := b.api.mintToken(ctx, b.session, "trainer", "bench-trainer", 2*time.Hour)
	if err != nil {
		return fmt.Errorf("trainer token: %w", err)
	}
	if len(layers) > 0 {
		b.pub, err = startSimulcastPublisher(ctx, b.api, b.session, tok, b.sh.sent, layers)
	} else {
		b.pub, err = startPublisher(ctx, b.api, b.session, tok, b.sh.sent)
	}
	if err != nil {
		return fmt.Errorf("publish over WHIP: %w", err)
	}
	return nil
}

// stop closes every subscriber and the publisher, saying goodbye to the server.
func (b *bench) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, s := range b.subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.close(ctx, b.nodes[s.node].api)
		}()
	}
	wg.Wait()
	b.subs = nil
	if b.pub != nil {
		b.pub.close(ctx, b.api)
		b.pub = nil
	}
}

// placedParam is the query parameter that tells a cluster node not to redirect a
// WHEP POST to another node (placement): the tool chose the node.
const placedParam = "placed"

// join is how one subscriber joined: POST → first keyframe packet, and POST → first
// video packet of any kind.
type join struct {
	keyframe, media time.Duration
	firstKey        bool // the first video packet was a keyframe's
}

// grow brings the subscribers up to n, cfg.Concurrency at a time, each holding its
// slot until its first keyframe arrived. It returns the new subscribers' join times
// and how many failed to join.
func (b *bench) grow(ctx context.Context, n int) ([]join, int, error) {
	need := n - len(b.subs)
	if need <= 0 {
		return nil, 0, nil
	}
	b.log.Info("adding subscribers", "from", len(b.subs), "to", n)
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		joins  []join
		failed int
		errs   []error
		sem    = make(chan struct{}, b.cfg.Concurrency)
	)
	for i := 0; i < need && ctx.Err() == nil; i++ {
		b.joined++
		name := "bench-viewer-" + strconv.Itoa(b.joined)
		tok, err := b.api.mintToken(ctx, b.session, "viewer", name, 2*time.Hour)
		if err != nil {
			return nil, 0, fmt.Errorf("viewer token: %w", err)
		}
		node := b.pickNode()
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, d, err := b.join(ctx, tok, node)
			mu.Lock()
			defer mu.Unlock()
			if s != nil {
				b.subs = append(b.subs, s)
			}
			if err != nil {
				failed++
				errs = append(errs, err)
				return
			}
			joins = append(joins, join{keyframe: d, media: s.firstMedia(), firstKey: s.firstKey.Load()})
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		b.log.Warn("subscribers failed to join", "failed", len(errs), "first", errs[0])
	}
	return joins, failed, ctx.Err()
}

// join starts one subscriber and waits for its first keyframe. A subscriber that
// connected but got no keyframe in time is returned with the error, so it is closed
// with the others.
func (b *bench) join(ctx context.Context, token string, node int) (*subscriber, time.Duration, error) {
	o := b.cfg.subOptions()
	n := b.nodes[node]
	if len(b.nodes) > 1 {
		o.nodeLatency, o.whepQuery = &n.latency, "?"+placedParam+"=1"
	}
	s, err := joinSubscriber(ctx, n.api, b.session, token, o, b.sh)
	if err != nil {
		return nil, 0, err
	}
	s.node = node
	deadline := time.Now().Add(b.cfg.JoinTimeout)
	for {
		if d, ok := s.joinTime(); ok {
			return s, d, nil
		}
		if time.Now().After(deadline) {
			return s, 0, errors.New("no keyframe within the join timeout")
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return s, 0, err
		}
	}
}

func pct(cpu, wall time.Duration) float64 { return 100 * cpu.Seconds() / wall.Seconds() }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (st *step) setJoins(joins []join) {
	var key, media []time.Duration
	for _, j := range joins {
		key, media = append(key, j.keyframe), append(media, j.media)
		if !j.firstKey {
			st.JoinNoKeyFirst++
		}
	}
	slices.Sort(key)
	slices.Sort(media)
	st.Joins = len(joins)
	st.JoinP50ms = ms(percentile(key, 50))
	st.JoinP99ms = ms(percentile(key, 99))
	st.FirstMediaP50ms = ms(percentile(media, 50))
	st.FirstMediaP99ms = ms(percentile(media, 99))
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
