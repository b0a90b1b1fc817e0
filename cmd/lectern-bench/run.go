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
	base, err := b.measure(ctx, min(cfg.Hold, 10*time.Second), nil)
	if err != nil {
		return rep, err
	}
	rep.Baseline = base
	printHeader(table)
	printRow(table, base)
	for _, n := range cfg.Steps {
		st, err := b.step(ctx, n, &base)
		if err != nil {
			return rep, err
		}
		rep.Steps = append(rep.Steps, st)
		printRow(table, st)
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
	b = &bench{cfg: cfg, log: log, api: newAPIClient(cfg.URL, cfg.AdminToken), sh: &shared{sent: newSendLog()}}
	if pid, err = serverPID(cfg); err != nil {
		return nil, 0, nil, err
	}
	b.pid = strconv.Itoa(pid)
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
	before, err := b.api.counters(ctx)
	if err != nil {
		return step{}, err
	}
	udpBefore, _ := udpRcvbufErrors()
	joins, failed, err := b.grow(ctx, n)
	if err != nil {
		return step{}, err
	}
	after, err := b.api.counters(ctx)
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

// serverPID returns -server-pid or the pid listening on -url's port.
func serverPID(cfg config) (int, error) {
	if cfg.ServerPID > 0 {
		return cfg.ServerPID, nil
	}
	u, err := url.Parse(cfg.URL)
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
	pid, err := findListener(host)
	if err != nil {
		return 0, fmt.Errorf("finding the server's pid: %w", err)
	}
	return pid, nil
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
			s.close(ctx, b.api)
		}()
	}
	wg.Wait()
	b.subs = nil
	if b.pub != nil {
		b.pub.close(ctx, b.api)
		b.pub = nil
	}
}

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
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, d, err := b.join(ctx, tok)
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
func (b *bench) join(ctx context.Context, token string) (*subscriber, time.Duration, error) {
	s, err := joinSubscriber(ctx, b.api, b.session, token, b.cfg.subOptions(), b.sh)
	if err != nil {
		return nil, 0, err
	}
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
