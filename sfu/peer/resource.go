package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Kind of a resource.
const (
	KindWHIP = "whip"
	KindWHEP = "whep"
)

// Resource is one WHIP or WHEP session (RFC 9725 "resource"): a peer connection and
// the goroutines that serve it. Its lifetime ends with Close, with the connection
// failing, or with the ICE timeout expiring before it connected.
type Resource struct {
	id      string
	kind    string
	session string
	edge    *Edge
	pc      *webrtc.PeerConnection
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the resource's goroutines (goFn)
	done   chan struct{}  // closed when fully closed

	mu       sync.Mutex // guards offer/etag during PATCH, onClose, stopping
	offer    string
	etag     string
	stopping bool

	deleted atomic.Bool // the client said goodbye (DELETE): end, do not pause

	connected chan struct{}
	iceTimer  *time.Timer // closes the resource when ICE does not connect in time
	onClose   []func()
	// key names the subscriber's place (SubscribeOptions.Key); "" for none.
	key string
	// onSettled runs once, when the connection is up or the resource ends before.
	onSettled func()
	settled   bool
	// adapt is a WHEP connection's estimate and layer choice (adapt.go); nil for
	// WHIP. Set before the resource starts.
	adapt *adapter
}

func (e *Edge) newResource(kind, session string, pc *webrtc.PeerConnection, offer string) *Resource {
	ctx, cancel := context.WithCancel(context.Background())
	id := randomID()
	r := &Resource{
		id: id, kind: kind, session: session, edge: e, pc: pc,
		log: e.log.With("resource", id[:8], "kind", kind, "session", session),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		offer: offer, etag: `"` + randomID()[:16] + `"`,
		connected: make(chan struct{}),
	}
	var connOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() {
				close(r.connected)
				r.log.Info("connected")
				r.settle()
			})
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			if r.ctx.Err() == nil {
				select {
				case <-r.connected:
					r.log.Info("connection ended", "state", s.String())
				default:
					r.log.Info("connection failed before connecting", "state", s.String())
				}
				r.cancel()
			}
		}
	})
	return r
}

// start registers the resource and arms its end: it closes when its context is
// cancelled (Close, the connection failing, the publication taken back) or when
// ICE does not connect within the timeout. No goroutine waits for that: at a
// hundred subscribers, one parked goroutine each is memory for nothing.
func (r *Resource) start() error {
	if err := r.edge.add(r); err != nil {
		return err
	}
	r.mu.Lock()
	r.iceTimer = time.AfterFunc(r.edge.cfg.ICETimeout, func() {
		select {
		case <-r.connected:
		default:
			r.log.Warn("ICE did not connect in time; closing", "timeout", r.edge.cfg.ICETimeout)
			r.cancel()
		}
	})
	r.mu.Unlock()
	context.AfterFunc(r.ctx, r.shutdown)
	return nil
}

// shutdown runs once the context is done (on its own goroutine): it closes the
// connection, waits for the resource's goroutines and runs the close hooks.
func (r *Resource) shutdown() {
	defer r.edge.wg.Done()
	r.edge.forget(r)
	r.mu.Lock()
	r.stopping = true
	if r.iceTimer != nil {
		r.iceTimer.Stop()
	}
	r.mu.Unlock()
	if err := r.pc.Close(); err != nil {
		r.log.Debug("close peer connection", "err", err)
	}
	r.settle()
	r.wg.Wait()
	r.mu.Lock()
	hooks := r.onClose
	r.onClose = nil
	r.mu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		hooks[i]()
	}
	close(r.done)
}

// settle runs the onSettled hook the first time it is called: the connection is
// up, or the resource ended without getting there.
func (r *Resource) settle() {
	r.mu.Lock()
	fn := r.onSettled
	if r.settled {
		fn = nil
	}
	r.settled = true
	r.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// addCloseHook registers fn to run when the resource closes (last added, first run).
func (r *Resource) addCloseHook(fn func()) {
	r.mu.Lock()
	r.onClose = append(r.onClose, fn)
	r.mu.Unlock()
}

// goFn runs fn as one of the resource's goroutines, unless the resource is
// stopping; shutdown waits for them.
func (r *Resource) goFn(fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
	return true
}

// ID returns the resource id used in its URL.
func (r *Resource) ID() string { return r.id }

// Kind returns KindWHIP or KindWHEP.
func (r *Resource) Kind() string { return r.kind }

// Session returns the session id the resource belongs to.
func (r *Resource) Session() string { return r.session }

// ETag returns the entity tag of the resource's current ICE session.
func (r *Resource) ETag() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.etag
}

// Done is closed when the resource has closed.
func (r *Resource) Done() <-chan struct{} { return r.done }

// Delete ends the resource as its client asked (WHIP/WHEP DELETE): a publication
// ends at once instead of waiting for a reconnect.
func (r *Resource) Delete() {
	r.deleted.Store(true)
	r.Close()
}

// Close ends the resource and waits until it is closed.
func (r *Resource) Close() {
	r.cancel()
	<-r.done
}

// Patch applies a trickle-ice-sdpfrag (RFC 8840) from the client. New ICE
// credentials restart ICE: the reply is a fragment with the server's new credentials
// and candidates and the new ETag. Otherwise candidates are added and the reply is
// empty. ifMatch is the request's If-Match header ("" or "*" match anything).
func (r *Resource) Patch(body, ifMatch string) (reply, etag string, err error) {
	f, err := parseFragment(body)
	if err != nil {
		return "", "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ifMatch != "" && ifMatch != "*" && ifMatch != r.etag {
		return "", "", ErrETagMismatch
	}
	if f.ufrag != "" {
		ufrag, _ := localCredentials(r.offer)
		if f.ufrag != ufrag {
			return r.restartICE(f)
		}
	}
	for _, c := range f.candidates {
		if err := r.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			return "", "", fmt.Errorf("%w: candidate %q: %v", ErrBadFragment, c, err)
		}
	}
	return "", r.etag, nil
}

// restartICE handles an ICE restart request; r.mu is held.
func (r *Resource) restartICE(f fragment) (string, string, error) {
	offer := replaceICECredentials(r.offer, f.ufrag, f.pwd)
	if err := r.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", "", fmt.Errorf("%w: ice restart: %v", ErrBadFragment, err)
	}
	answer, err := r.pc.CreateAnswer(nil)
	if err != nil {
		return "", "", fmt.Errorf("ice restart answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(r.pc)
	if err := r.pc.SetLocalDescription(answer); err != nil {
		return "", "", fmt.Errorf("ice restart local description: %w", err)
	}
	<-gathered
	for _, c := range f.candidates {
		_ = r.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c})
	}
	r.offer = offer
	r.etag = `"` + randomID()[:16] + `"`
	local := r.pc.LocalDescription().SDP
	ufrag, pwd := localCredentials(local)
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	for _, l := range sdpLines(local) {
		if strings.HasPrefix(l, "a=candidate:") {
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("a=end-of-candidates\r\n")
	r.log.Info("ICE restarted")
	return b.String(), r.etag, nil
}

// answer runs the common offer/answer exchange: the answer includes every host
// candidate (gathering with a UDP mux is immediate), so clients that do not trickle
// connect at once.
func answer(pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	return localAnswer(pc)
}

// localAnswer creates and applies the answer once the remote offer is set.
func localAnswer(pc *webrtc.PeerConnection) (string, error) {
	if err := answerOpusFmtp(pc); err != nil { // red.go
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		// The answer is made from the offer alone: what pion cannot apply is the
		// offer's fault (e.g. a codec it could not match).
		return "", fmt.Errorf("%w: cannot answer it: %v", ErrBadOffer, err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering did not complete")
	}
	return pc.LocalDescription().SDP, nil
}
