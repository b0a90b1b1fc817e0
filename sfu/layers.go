package sfu

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxLayers is the most simulcast layers one stream has (high, medium, low).
const MaxLayers = 3

// LayerName is the session track name of one simulcast layer of a stream: the base
// name ("trainer/video") for the best layer, which is also what a single-layer
// publisher's stream is called, so recorders and RTSP readers, which follow the base
// name, take the top layer; "trainer/video~1" and "trainer/video~2" for the lower
// ones.
func LayerName(base string, rank int) string {
	if rank <= 0 {
		return base
	}
	return base + "~" + strconv.Itoa(rank)
}

// SplitLayer is the inverse of [LayerName]: the base name and the rank.
func SplitLayer(name string) (base string, rank int) {
	i := strings.LastIndexByte(name, '~')
	if i < 0 {
		return name, 0
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 1 || n >= MaxLayers {
		return name, 0
	}
	return name[:i], n
}

// layerAliveFor is how recently a layer must have sent to be chosen: a simulcast
// publisher drops its upper layers when its own uplink cannot carry them.
const layerAliveFor = 1500 * time.Millisecond

var errGateClosed = errors.New("layer gate closed")

// LayerFollower feeds one consumer's video [Queue] from one of the simulcast layers
// of a stream (the tracks whose [Track.Base] is its name), following the stream
// across publications like a [Follower]. The consumer says which layer it wants
// ([LayerFollower.SetTarget], e.g. from its bandwidth estimate); the follower
// switches at the next keyframe of that layer, asking for one, and forwards the
// current layer until then, so the receiver never sees a partial picture. The first
// packet of each new layer is queued with [ResyncSwitch] and the layer's rank, so
// the consumer rewrites sequence numbers and timestamps into one continuous stream.
// Target -1 pauses the video at the next frame boundary (audio goes on elsewhere).
//
// Per packet the follower costs two atomic loads: each layer's track calls its gate,
// a small sink that forwards, waits for a keyframe, or detaches itself.
type LayerFollower struct {
	base   string
	queue  *Queue
	accept func(*Track) bool

	mu      sync.Mutex // serialises Attach, SetTarget and Stop; guards the fields below
	stopped bool
	want    int // the consumer's wish; target is the nearest layer that sends
	layers  [MaxLayers]*Track
	gates   [MaxLayers]*layerGate

	current  atomic.Int32 // rank being forwarded; -1 none
	target   atomic.Int32 // rank to forward; -1 paused
	switches atomic.Uint64
}

// NewLayerFollower returns a follower feeding q from the layers of the stream named
// base, starting with the best layer. accept is as for [NewFollower].
func NewLayerFollower(base string, q *Queue, accept func(*Track) bool) *LayerFollower {
	f := &LayerFollower{base: base, queue: q, accept: accept}
	f.current.Store(-1)
	q.SetKeyframeRequester(f.RequestKeyframe)
	return f
}

// Name returns the followed stream's base name.
func (f *LayerFollower) Name() string { return f.base }

// Attach implements [Attacher]: a track of the stream (any layer) becomes that
// layer's source.
func (f *LayerFollower) Attach(t *Track) bool {
	if t.Base() != f.base || f.accept != nil && !f.accept(t) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	r := t.Layer()
	if f.layers[r] == t {
		return true
	}
	f.layers[r] = t
	if g := f.gates[r]; g != nil {
		// A new publication's layer: the old one's packets stop; the new one starts
		// at its first keyframe as a switch.
		g.close()
		f.gates[r] = nil
		f.current.CompareAndSwap(int32(r), -1)
	}
	f.retarget()
	return true
}

// SetTarget says which layer the consumer wants: 0 the best, up to MaxLayers-1 the
// lowest, -1 none (video paused). When that layer is missing or silent the nearest
// lower one that sends is taken, else the nearest higher one.
func (f *LayerFollower) SetTarget(rank int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.want = min(rank, MaxLayers-1)
	f.retarget()
}

// retarget resolves want to a layer that sends and attaches its gate; f.mu held.
func (f *LayerFollower) retarget() {
	tgt := int32(-1)
	if f.want >= 0 {
		tgt = int32(f.resolve(f.want))
	}
	f.target.Store(tgt)
	cur := f.current.Load()
	// A gate that ended itself (the video paused at a frame end) is replaced.
	if tgt >= 0 && (f.gates[tgt] == nil || f.gates[tgt].dead.Load()) {
		t := f.layers[tgt]
		g := &layerGate{f: f, track: t, rank: tgt}
		f.gates[tgt] = g
		g.attaching.Store(true)
		if cur < 0 && f.switches.Load() == 0 {
			g.remove = t.AddSink(g) // the first picture: start from the cached keyframe
		} else {
			// A switch or a resumed video starts at this layer's next keyframe:
			// ask for it now rather than wait for the publisher's interval.
			g.remove = t.AddSinkLive(g)
			t.RequestKeyframe()
		}
		g.attaching.Store(false)
		if t.Closed() {
			// The layer ended while the gate was attached; its TrackEnded left the
			// move to this call, which holds f.mu. resolve skips a closed layer, so
			// this ends within MaxLayers calls.
			f.gates[tgt] = nil
			f.current.CompareAndSwap(tgt, -1)
			f.retarget()
			return
		}
	}
	for r, g := range f.gates {
		if g != nil && int32(r) != tgt && int32(r) != cur {
			g.close()
			f.gates[r] = nil
		}
	}
}

// resolve picks the layer to forward for a wish; -1 when no layer sends. f.mu held.
func (f *LayerFollower) resolve(want int) int {
	now := Nanotime()
	alive := func(r int) bool {
		t := f.layers[r]
		if t == nil || t.Closed() {
			return false
		}
		last := t.LastArrival()
		// A layer that has not sent yet is taken when it is the only one: the
		// first packets of a stream arrive after its track is announced.
		return last != 0 && now-last < int64(layerAliveFor) || last == 0 && f.onlyLayer(r)
	}
	for r := want; r < MaxLayers; r++ {
		if alive(r) {
			return r
		}
	}
	for r := want - 1; r >= 0; r-- {
		if alive(r) {
			return r
		}
	}
	return -1
}

func (f *LayerFollower) onlyLayer(r int) bool {
	for i, t := range f.layers {
		if i != r && t != nil && !t.Closed() {
			return false
		}
	}
	return true
}

// Layers returns the stream's layer tracks by rank (nil where missing).
func (f *LayerFollower) Layers() [MaxLayers]*Track {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.layers
}

// Current returns the rank being forwarded, -1 when none (paused, or waiting for
// the first keyframe).
func (f *LayerFollower) Current() int { return int(f.current.Load()) }

// Target returns the rank the follower switches to (or stays on); -1 paused.
func (f *LayerFollower) Target() int { return int(f.target.Load()) }

// Switches returns the number of layer switches made (the first picture included).
func (f *LayerFollower) Switches() uint64 { return f.switches.Load() }

// Track returns the current layer's track, or nil when none is forwarded.
func (f *LayerFollower) Track() *Track {
	r := f.current.Load()
	if r < 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.layers[r]
}

// RequestKeyframe asks the current layer's source (or, while none is forwarded,
// the target's) for a keyframe; coalesced by the track.
func (f *LayerFollower) RequestKeyframe() {
	r := f.current.Load()
	if r < 0 {
		r = f.target.Load()
	}
	if r < 0 {
		return
	}
	f.mu.Lock()
	t := f.layers[r]
	f.mu.Unlock()
	if t != nil {
		t.RequestKeyframe()
	}
}

// Stop implements [Attacher]: every gate is detached.
func (f *LayerFollower) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	for r, g := range f.gates {
		if g != nil {
			g.close()
			f.gates[r] = nil
		}
	}
	f.current.Store(-1)
}

// layerGate is a [LayerFollower]'s sink on one layer's track.
type layerGate struct {
	f      *LayerFollower
	track  *Track
	rank   int32
	remove func()
	dead   atomic.Bool
	// attaching: retarget is adding the gate to its track (f.mu held), where a
	// track already closed calls TrackEnded at once.
	attaching atomic.Bool
	// frameEnded: the last packet forwarded ended its frame (the publisher's
	// goroutine only), so a pause there leaves no partial picture.
	frameEnded bool
}

// WriteRTP implements [Sink] on the layer's publisher goroutine.
func (g *layerGate) WriteRTP(p *Packet) error {
	if g.dead.Load() {
		return errGateClosed
	}
	f := g.f
	cur, tgt := f.current.Load(), f.target.Load()
	switch {
	case cur == g.rank:
		if tgt < 0 && g.frameEnded {
			if f.current.CompareAndSwap(cur, -1) {
				g.dead.Store(true)
				return errGateClosed
			}
		}
		f.queue.write(p, uint8(g.rank), false)
		g.frameEnded = p.Header.Marker
		return nil
	case tgt == g.rank:
		if !p.KeyframeStart {
			// Wait for this layer's keyframe, asking again (coalesced by the track):
			// the request made at the switch may have been folded into another
			// consumer's, whose keyframe went by before this gate was attached, and
			// the next one would come a whole GOP later.
			g.track.RequestKeyframe()
			return nil
		}
		if !f.current.CompareAndSwap(cur, g.rank) {
			return nil
		}
		f.switches.Add(1)
		f.queue.write(p, uint8(g.rank), true)
		g.frameEnded = p.Header.Marker
		return nil
	}
	// Neither forwarded nor wanted any more: detach.
	g.dead.Store(true)
	return errGateClosed
}

// TrackEnded implements [TrackEnder]: the layer ended (its publication was
// removed, or its source came back without that layer), so the follower moves to
// the layers that remain rather than wait on a track that never sends again.
func (g *layerGate) TrackEnded(*Track) {
	g.dead.Store(true)
	if g.attaching.Load() {
		return // retarget is attaching it, with f.mu held: it sees the track closed
	}
	g.f.layerEnded(g)
}

// layerEnded resolves the target again after g's layer ended.
func (f *LayerFollower) layerEnded(g *layerGate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.gates[g.rank] != g {
		return // stopped, or the gate was replaced already
	}
	f.gates[g.rank] = nil
	f.current.CompareAndSwap(g.rank, -1)
	f.retarget()
	if tgt := f.target.Load(); tgt >= 0 {
		// The new target may have kept the gate of a layer forwarded before, which
		// asks for a keyframe only at its next packet: ask now (coalesced).
		f.layers[tgt].RequestKeyframe()
	}
}

// close detaches the gate; f.mu held.
func (g *layerGate) close() {
	g.dead.Store(true)
	if g.remove != nil {
		g.remove()
	}
}
