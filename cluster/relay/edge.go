package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/sfu"
)

// Errors of the edge side; Pull's errors wrap them.
var (
	// ErrNotLive: the origin does not carry the publication (404), or has no track of
	// it a relay can carry.
	ErrNotLive = errors.New("publication not live on the origin")
	// ErrOrigin: the origin could not be reached or refused the relay.
	ErrOrigin = errors.New("origin refused or unreachable")
	// ErrLocal: the publication has a live source on this node (its publisher is
	// connected here): this node is its origin, nothing to pull.
	ErrLocal = errors.New("publication is live on this node")
	// ErrClosed: the Manager is closed.
	ErrClosed = errors.New("relay manager closed")
)

// Manager is the edge side: it pulls remote publications into the local registry.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	transport *http.Transport
	client    *http.Client

	mu     sync.Mutex
	closed bool
	relays map[string]*inRelay // by session/publication
	wg     sync.WaitGroup

	bytes atomic.Uint64 // payload bytes received over every relay
}

// New returns a Manager. cfg.Registry, cfg.Edge, cfg.Issuer and cfg.NodeID are required.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 10 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	// A transport of its own, so Close can close its idle connections (no goroutine
	// outlives the Manager).
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "relay"), transport: tr,
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, relays: map[string]*inRelay{}}
}

// Pull makes the local session carry publication from the node at originURL (its
// public base URL, e.g. http://10.0.0.2:8080). It is idempotent: one relay per
// (session, publication), shared by concurrent callers. It returns once the relay is
// connected and the local publication exists, or when ctx ends or the origin refuses
// (the error wraps ErrNotLive or ErrOrigin with the reason). A relay from another
// origin is stopped first (the publication's origin moved): the new one continues its
// tracks.
func (m *Manager) Pull(ctx context.Context, session, publication, originURL string) error {
	if !auth.ValidName(session) || !auth.ValidName(publication) {
		return fmt.Errorf("relay %s/%s: session and publication must be valid names", session, publication)
	}
	u, err := url.Parse(originURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("relay %s/%s: origin URL %q is not an http(s) URL", session, publication, originURL)
	}
	origin := strings.TrimSuffix(originURL, "/")
	key := session + "/" + publication
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		r := m.relays[key]
		if r != nil && r.ctx.Err() != nil { // ending: wait, then pull anew
			m.mu.Unlock()
			<-r.done
			continue
		}
		if r != nil && r.origin != origin {
			m.mu.Unlock()
			r.log.Info("origin moved; re-pulling", "new_origin", origin)
			r.stop(endRelease)
			continue
		}
		if r == nil {
			r = m.newRelay(session, publication, origin)
			m.relays[key] = r
			m.wg.Add(1)
			go r.run()
		}
		m.mu.Unlock()
		select {
		case <-r.ready:
			return r.err
		case <-ctx.Done():
			return fmt.Errorf("relay %s from %s: %w", key, origin, ctx.Err())
		}
	}
}

// Stop ends a relay now (its origin changed or died): the local publication pauses
// within the registry's grace, so a Pull from a new origin continues its tracks.
func (m *Manager) Stop(session, publication string) {
	m.mu.Lock()
	r := m.relays[session+"/"+publication]
	m.mu.Unlock()
	if r != nil {
		r.stop(endRelease)
	}
}

// Relays returns the relays pulled to this node.
func (m *Manager) Relays() []Info { return infoList(snapshot(&m.mu, m.relays, nil), (*inRelay).info) }

// info describes the relay once it is connected.
func (r *inRelay) info() (Info, bool) {
	select {
	case <-r.ready:
		if r.err != nil {
			return Info{}, false
		}
	default:
		return Info{}, false // still connecting
	}
	r.mu.Lock()
	names := slices.Clone(r.names)
	r.mu.Unlock()
	return Info{Direction: "in", Session: r.session, Publication: r.publication, Peer: r.origin,
		Tracks: names, Started: r.started, Bytes: r.bytes.Load()}, true
}

// Close ends every relay (their local publications end) and waits for them.
func (m *Manager) Close() error {
	for _, r := range snapshot(&m.mu, m.relays, &m.closed) {
		r.end(endRemove)
	}
	m.wg.Wait()
	m.transport.CloseIdleConnections()
	return nil
}

// How a relay ends.
const (
	endRelease = iota + 1 // the publication pauses (origin gone): a new source may continue it
	endRemove             // the publication ends (no local consumer, shutdown)
)

// inRelay is one publication pulled from an origin; it reconnects (a new connection,
// the same local tracks) when the origin's track set changes.
type inRelay struct {
	m           *Manager
	session     string
	publication string
	origin      string
	log         *slog.Logger
	started     time.Time

	ctx     context.Context
	cancel  context.CancelFunc
	endMode atomic.Int32
	ready   chan struct{} // closed once the first connection is up or failed
	err     error         // written before ready closes
	done    chan struct{}

	mu    sync.Mutex
	names []string // the tracks relayed now

	bytes atomic.Uint64
}

func (m *Manager) newRelay(session, publication, origin string) *inRelay {
	ctx, cancel := context.WithCancel(context.Background())
	return &inRelay{m: m, session: session, publication: publication, origin: origin, started: time.Now(),
		log: m.log.With("direction", "in", "session", session, "publication", publication, "origin", origin),
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
}

// end asks the relay to end with mode (the first mode asked wins).
func (r *inRelay) end(mode int32) {
	r.endMode.CompareAndSwap(0, mode)
	r.cancel()
}

// stop ends the relay and waits until it has.
func (r *inRelay) stop(mode int32) {
	r.end(mode)
	<-r.done
}

// forget removes the relay from the manager, if it is still there.
func (r *inRelay) forget() {
	m := r.m
	m.mu.Lock()
	if m.relays[r.session+"/"+r.publication] == r {
		delete(m.relays, r.session+"/"+r.publication)
	}
	m.mu.Unlock()
}

// run connects, then watches the connection, the origin's track list and the local
// consumers until the relay ends.
func (r *inRelay) run() {
	defer r.m.wg.Done()
	defer close(r.done)
	sess := r.m.cfg.Registry.Session(r.session)
	c, err := r.connect(sess)
	if err != nil {
		r.forget()
		r.err = fmt.Errorf("relay %s/%s from %s: %w", r.session, r.publication, r.origin, err)
		close(r.ready)
		r.log.Info("relay failed", "err", err)
		return
	}
	close(r.ready)
	r.log.Info("relay in", "tracks", c.names)

	linger := r.m.cfg.Linger
	tick := min(r.m.cfg.PollInterval, max(linger/4, 10*time.Millisecond))
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	lastPoll := time.Now()
	var idleSince time.Time
	failures := 0 // consecutive failed polls
	mode := int32(0)
loop:
	for {
		select {
		case <-r.ctx.Done():
			mode = r.endMode.Load()
			break loop
		case <-c.ctx.Done():
			if r.ctx.Err() != nil { // the relay's end cancelled the connection too
				mode = r.endMode.Load()
				break loop
			}
			if c.replaced.Load() {
				// A publisher connected here took the publication over (this node
				// is its origin now): nothing of it is ours any more.
				r.log.Info("relayed publication taken over by a local source")
				mode = 0
			} else {
				r.log.Info("relay connection to the origin ended; publication paused")
				mode = endRelease
			}
			break loop
		case now := <-ticker.C:
			if r.wanted(sess) {
				idleSince = time.Time{}
			} else if idleSince.IsZero() {
				idleSince = now
			} else if now.Sub(idleSince) >= linger {
				r.log.Info("no local consumer; relay ends", "linger", linger)
				mode = endRemove
				break loop
			}
			if now.Sub(lastPoll) < r.m.cfg.PollInterval {
				continue
			}
			lastPoll = now
			list, err := r.trackList()
			switch {
			case errors.Is(err, ErrNotLive) || err != nil && failures > 0:
				r.log.Info("origin no longer serves the publication; relay ends, publication paused", "err", err)
				mode = endRelease
				break loop
			case err != nil:
				// One failed poll may be a blip (the media still flows); two end
				// the relay.
				failures++
				r.log.Info("origin's track list unavailable", "err", err)
				continue
			}
			failures = 0
			if sameTracks(list, c.list) {
				continue
			}
			r.log.Info("origin's tracks changed; re-pulling", "tracks", trackNames(list))
			nc, err := r.connect(sess) // claims the publication: the old connection is replaced
			if err != nil {
				r.log.Info("re-pull failed; relay ends, publication paused", "err", err)
				c.close(r.m)
				mode = endRelease
				break loop
			}
			c.close(r.m)
			c = nc
		}
	}
	r.cancel() // Pull sees it ending from now on
	r.forget()
	switch mode {
	case endRelease:
		c.lease.Release()
	case endRemove:
		c.lease.End()
	}
	c.close(r.m)
	r.log.Info("relay in ended", "bytes", r.bytes.Load())
}

// sameTracks reports whether two track lists are the same.
func sameTracks(a, b []TrackInfo) bool { return slices.Equal(a, b) }

func trackNames(list []TrackInfo) []string {
	names := make([]string, len(list))
	for i, t := range list {
		names[i] = t.Name
	}
	return names
}

// endpoint returns the origin's URL for this publication.
func (r *inRelay) endpoint() string {
	return r.origin + "/cluster/relay/" + r.session + "/" + r.publication
}

// request makes an authenticated request to the origin.
func (r *inRelay) request(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	tok, err := r.m.cfg.Issuer.MintNode(r.m.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("node credential: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOrigin, err)
	}
	return resp, nil
}

// refusal turns an origin's error answer into an error with its reason.
func refusal(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	reason := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %s", ErrNotLive, reason)
	}
	return fmt.Errorf("%w: %s: %s", ErrOrigin, resp.Status, reason)
}

// trackList GETs the publication's tracks from the origin.
func (r *inRelay) trackList() ([]TrackInfo, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	resp, err := r.request(ctx, http.MethodGet, r.endpoint(), "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, refusal(resp)
	}
	var list []TrackInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&list); err != nil {
		return nil, fmt.Errorf("%w: track list: %w", ErrOrigin, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: the origin has no track of it a relay can carry", ErrNotLive)
	}
	if len(list) > maxTracks {
		return nil, fmt.Errorf("%w: %d tracks, at most %d", ErrOrigin, len(list), maxTracks)
	}
	for _, t := range list {
		if !validLocal(t.Name) || (t.Kind != "audio" && t.Kind != "video") || !strings.HasPrefix(t.Mime, t.Kind+"/") ||
			!relayable(t.codec()) {
			return nil, fmt.Errorf("%w: track list names an unusable track %q (%s %s)", ErrOrigin, t.Name, t.Kind, t.Mime)
		}
	}
	return list, nil
}

// validLocal reports whether s may be a track's local name: "video", "video~1",
// "audio.opus", "screen".
func validLocal(s string) bool {
	if s == "" || len(s) > 64 || strings.Contains(s, ",") || strings.Contains(s, "/") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

// conn is one peer connection to the origin, carrying the listed tracks.
type conn struct {
	r        *inRelay
	list     []TrackInfo
	names    []string
	pc       *webrtc.PeerConnection
	location string
	lease    *sfu.Lease
	tracks   []*sfu.Track
	ssrcs    []atomic.Uint32
	plis     chan int // indexes of tracks that want a keyframe
	replaced atomic.Bool

	ctx        context.Context
	cancel     context.CancelFunc
	leaseReady chan struct{}
	closeOnce  sync.Once

	mu      sync.Mutex // guards closing and wg.Add against close's wg.Wait
	closing bool
	wg      sync.WaitGroup
}

// connect makes one connection: GET the list, offer, POST, connect, claim the local
// publication as relayed and create (or continue) its tracks.
func (r *inRelay) connect(sess *sfu.Session) (*conn, error) {
	ctx, cancel := context.WithTimeout(r.ctx, connectTimeout)
	defer cancel()
	if localSource(sess, r.publication) {
		return nil, ErrLocal
	}
	list, err := r.trackList()
	if err != nil {
		return nil, err
	}
	codecs := make([]sfu.Codec, len(list))
	for i, t := range list {
		codecs[i] = t.codec()
	}
	pc, err := r.m.cfg.Edge.NewRelayReceiverPC(relayCodecs(codecs)...)
	if err != nil {
		return nil, err
	}
	cctx, ccancel := context.WithCancel(r.ctx)
	c := &conn{r: r, list: list, names: trackNames(list), pc: pc, ctx: cctx, cancel: ccancel,
		ssrcs: make([]atomic.Uint32, len(list)), plis: make(chan int, len(list)), leaseReady: make(chan struct{})}
	fail := func(err error) (*conn, error) {
		c.close(r.m)
		return nil, err
	}
	trs := make([]*webrtc.RTPTransceiver, len(list))
	for i, t := range list {
		kind := webrtc.RTPCodecTypeVideo
		if t.Kind == "audio" {
			kind = webrtc.RTPCodecTypeAudio
		}
		tr, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			return fail(fmt.Errorf("transceiver for %s: %w", t.Name, err))
		}
		trs[i] = tr
	}
	connected := make(chan struct{})
	var connOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.cancel()
		}
	})
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		i := slices.IndexFunc(trs, func(tr *webrtc.RTPTransceiver) bool { return tr.Receiver() == receiver })
		if i < 0 {
			return
		}
		select {
		case <-c.leaseReady:
		case <-c.ctx.Done():
			return
		}
		c.ssrcs[i].Store(uint32(remote.SSRC()))
		if !c.goFn(func() { c.forward(remote, c.tracks[i]) }) {
			return
		}
		c.goFn(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := receiver.Read(buf); err != nil {
					return
				}
			}
		})
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("create offer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(fmt.Errorf("set offer: %w", err))
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(fmt.Errorf("ICE gathering: %w", ctx.Err()))
	}
	u := r.endpoint() + "?tracks=" + url.QueryEscape(strings.Join(c.names, ","))
	resp, err := r.request(ctx, http.MethodPost, u, "application/sdp", []byte(pc.LocalDescription().SDP))
	if err != nil {
		return fail(err)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxOfferBytes))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		return fail(refusal(resp))
	}
	if err != nil {
		return fail(fmt.Errorf("%w: read answer: %w", ErrOrigin, err))
	}
	if loc, err := resp.Location(); err == nil {
		c.location = loc.String()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return fail(fmt.Errorf("%w: bad answer: %w", ErrOrigin, err))
	}
	select {
	case <-connected:
	case <-c.ctx.Done():
		return fail(fmt.Errorf("%w: connection to the origin failed", ErrOrigin))
	case <-ctx.Done():
		return fail(fmt.Errorf("%w: connection to the origin: %w", ErrOrigin, ctx.Err()))
	}
	if localSource(sess, r.publication) { // a publisher connected here meanwhile
		return fail(ErrLocal)
	}
	lease, err := sess.ClaimRelay(r.publication, func() {
		c.replaced.Store(true)
		c.cancel()
	})
	if err != nil {
		return fail(fmt.Errorf("claim local publication: %w", err))
	}
	c.lease = lease
	for i, t := range list {
		kind := sfu.KindVideo
		if t.Kind == "audio" {
			kind = sfu.KindAudio
		}
		i := i
		track, err := lease.Track(t.Name, kind, t.codec(), func() {
			select {
			case c.plis <- i:
			default: // requests pending already
			}
		})
		if err != nil {
			lease.Release()
			return fail(fmt.Errorf("local track %s: %w", t.Name, err))
		}
		c.tracks = append(c.tracks, track)
	}
	close(c.leaseReady)
	c.goFn(c.sendKeyframeRequests)
	r.mu.Lock()
	r.names = c.names
	r.mu.Unlock()
	return c, nil
}

// localSource reports whether the session's publication has a live local source (not
// a relay, not paused): a relay must not take it over.
func localSource(sess *sfu.Session, publication string) bool {
	p, ok := sess.Publication(publication)
	if !ok || p.Relayed() {
		return false
	}
	return !p.Info().Paused
}

// goFn runs fn as one of the connection's goroutines unless it is closing.
func (c *conn) goFn(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// close ends the connection, waits for its goroutines and tells the origin (DELETE).
func (c *conn) close(m *Manager) {
	c.closeOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		_ = c.pc.Close() // ends the reads
		c.wg.Wait()
		if c.location == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if resp, err := c.r.request(ctx, http.MethodDelete, c.location, "", nil); err == nil {
			resp.Body.Close()
		}
	})
}

// forward copies the remote stream into the local track. One buffer and one packet
// are reused: no allocation per packet.
func (c *conn) forward(remote *webrtc.TrackRemote, track *sfu.Track) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	done := c.ctx.Done()
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-done: // replaced: the newer connection alone feeds the track
			return
		default:
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			track.Stats().PacketsRejected.Add(1)
			continue
		}
		if err := track.WriteRTP(&pkt); errors.Is(err, sfu.ErrTrackClosed) {
			c.cancel() // the local publication was removed
			return
		}
		c.r.bytes.Add(uint64(len(pkt.Payload)))
		c.r.m.bytes.Add(uint64(len(pkt.Payload)))
	}
}

// sendKeyframeRequests turns the local tracks' (coalesced) keyframe requests into
// PLIs towards the origin, off the consumers' goroutines.
func (c *conn) sendKeyframeRequests() {
	for {
		select {
		case i := <-c.plis:
			ssrc := c.ssrcs[i].Load()
			if ssrc == 0 {
				continue // no packet yet: the first keyframe is on its way
			}
			if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
				c.r.log.Debug("send PLI", "err", err)
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// wanted reports whether the relayed publication still has a use here: a local
// consumer of its tracks (a classroom's downtrack, an RTSP reader), a classroom
// still connecting to the session (its downtracks attach once connected), or the
// session's origin being here (its programme mixes the classrooms' talk-back).
// A publication nobody here consumes is not carried: an edge whose classrooms
// play the programme does not also pull the trainer's own tracks.
func (r *inRelay) wanted(sess *sfu.Session) bool {
	if sess.Connecting() > 0 || originHere(sess) {
		return true
	}
	p, ok := sess.Publication(r.publication)
	if !ok {
		return false
	}
	for _, t := range p.Tracks() {
		if t.Sinks() > 0 {
			return true
		}
	}
	return false
}

// originHere reports whether the session's trainer publishes on this node: the
// origin keeps every relay of the session (a classroom's talk-back from another
// node) with no local viewer, since its programme mixes them.
func originHere(sess *sfu.Session) bool {
	p, ok := sess.Publication(sfu.TrainerPublication)
	return ok && !p.Relayed()
}
