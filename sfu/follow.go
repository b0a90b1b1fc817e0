package sfu

import (
	"sync"
	"sync/atomic"
)

// Follower keeps one consumer's Queue fed by the current track of one name in a
// session ("trainer/video"): the first such track, then the same name's track of each
// new publication (the trainer came back after the grace period, a camera rebooted).
// At each switch the queue marks ResyncSwitch, so the consumer resyncs its rewriter
// and receivers see one continuous stream, and its keyframe requests go to the new
// track. A WebRTC downtrack and an RTSP reader stream each follow their track this way.
type Follower struct {
	name  string
	queue *Queue
	// variant, when not "", is the Opus variant's name (see NewVariantFollower).
	variant string
	accept  func(*Track) bool

	mu      sync.Mutex // serialises Attach and Stop; guards remove and stopped
	remove  func()
	stopped bool
	current atomic.Pointer[Track] // read without mu by the consumer's goroutines
}

// NewFollower returns a follower feeding q from the tracks named name. accept, when
// not nil, vets each candidate track (e.g. its codec is one the consumer can take)
// and says why not in a log; it runs without the follower's lock.
func NewFollower(name string, q *Queue, accept func(*Track) bool) *Follower {
	return &Follower{name: name, queue: q, accept: accept}
}

// NewVariantFollower is NewFollower for an audio consumer that plays Opus best:
// it follows the track named name or, when that track is not Opus (AAC, G.711), its
// Opus variant ([OpusVariant]) from when the variant exists. An original that is
// not Opus is taken (if accept takes it) only while no live variant is followed:
// a new publication's original may be offered before or after its variant.
func NewVariantFollower(name string, q *Queue, accept func(*Track) bool) *Follower {
	return &Follower{name: name, variant: OpusVariant(name), queue: q, accept: accept}
}

// Name returns the followed track name.
func (f *Follower) Name() string { return f.name }

// Attach makes t the queue's source, detaching the previous one, when t has the
// followed name, accept takes it and the follower is not stopped. It reports whether
// t is the source afterwards.
func (f *Follower) Attach(t *Track) bool {
	name := t.Name()
	if name != f.name && (f.variant == "" || name != f.variant) || f.accept != nil && !f.accept(t) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	cur := f.current.Load()
	if cur == t {
		return true
	}
	if f.variant != "" && name == f.name && t.Codec().MimeType != MimeOpus &&
		cur != nil && cur.Name() == f.variant && !cur.Closed() {
		return false // keep the live Opus variant
	}
	if f.remove != nil {
		f.remove()
	}
	f.queue.MarkSwitch()
	f.queue.SetKeyframeRequester(t.RequestKeyframe)
	f.current.Store(t)
	f.remove = t.AddSink(f.queue)
	return true
}

// Track returns the current source, or nil before the first one and after Stop.
func (f *Follower) Track() *Track { return f.current.Load() }

// Stop detaches the queue from its source; no track is attached afterwards. The
// queue keeps what it holds: its consumer drains it.
func (f *Follower) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.remove != nil {
		f.remove()
		f.remove = nil
	}
	f.current.Store(nil)
}

// Attacher is what [Follow] drives: a [Follower] or a [LayerFollower].
type Attacher interface {
	// Attach offers a track of the session; it takes it or ignores it.
	Attach(t *Track) bool
	// Stop detaches from every track.
	Stop()
}

// Follow attaches each follower to the session's track of its name, now and whenever
// a publication brings a new one, until the returned stop, which also stops the
// followers.
func Follow[A Attacher](s *Session, followers ...A) (stop func()) {
	cancel := s.Watch(func(t *Track) {
		for _, f := range followers {
			f.Attach(t)
		}
	})
	return func() {
		cancel()
		for _, f := range followers {
			f.Stop()
		}
	}
}
