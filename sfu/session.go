package sfu

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors returned by sessions.
var (
	ErrSessionClosed      = errors.New("session closed")
	ErrTooManySubscribers = errors.New("session has reached its subscriber limit")
	ErrNotPublishing      = errors.New("publication is not live")
)

// EventFunc receives a session's state changes. It runs on the goroutine that made
// the change, with no sfu lock held, and must not block.
type EventFunc func(session, typ string, data any)

// Event types passed to EventFunc.
const (
	EventPublicationAdded   = "publication.added"   // data: PublicationInfo
	EventPublicationPaused  = "publication.paused"  // source gone, within grace period
	EventPublicationResumed = "publication.resumed" // source back
	EventPublicationRemoved = "publication.removed" // data: PublicationInfo
	EventSubscribers        = "subscribers"         // data: int, the WebRTC/RTSP subscriber count
	EventSessionLive        = "session.live"        // the trainer publication went live
	EventSessionEnded       = "session.ended"       // the trainer publication was removed
)

// TrainerPublication is the name of the trainer's publication in every session.
const TrainerPublication = "trainer"

// Session is the live side of one lecture: its publications and their tracks.
// It is created by a [Registry].
type Session struct {
	id       string
	registry *Registry

	mu          sync.Mutex
	closed      bool
	pubs        map[string]*Publication
	watchers    map[int]func(*Track)
	nextWatcher int
	subscribers int
	// connecting counts reservations not yet confirmed: WHEP offers whose peer
	// has not connected. They have a budget of their own (MaxSubscribers), apart
	// from subscribers, so offers that never connect cannot keep out anyone who does.
	connecting int
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Stats returns the counters shared by every track of the registry.
func (s *Session) Stats() *Stats { return s.registry.stats }

func (s *Session) emit(typ string, data any) {
	if fn := s.registry.cfg.OnEvent; fn != nil {
		fn(s.id, typ, data)
	}
}

// Watch calls fn for every track of the session, now (best simulcast layers first)
// and as tracks are added, until cancel is called. fn runs on the goroutine that added the track (for existing
// tracks, the caller's) without sfu locks held; it must not block.
func (s *Session) Watch(fn func(*Track)) (cancel func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return func() {}
	}
	id := s.nextWatcher
	s.nextWatcher++
	s.watchers[id] = fn
	var existing []*Track
	for _, p := range s.pubs {
		existing = append(existing, p.tracks...)
	}
	s.mu.Unlock()
	// Best simulcast layers first: a consumer that joins starts on the top layer
	// rather than on whichever layer's first packet happened to arrive first.
	slices.SortStableFunc(existing, func(a, b *Track) int { return a.layer - b.layer })
	for _, t := range existing {
		fn(t)
	}
	return func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}
}

// AddSubscriber counts one consumer (a WHEP classroom, an RTSP reader) against the
// session's limit. The returned release function is idempotent.
func (s *Session) AddSubscriber() (release func(), err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	if max := s.registry.cfg.MaxSubscribers; max > 0 && s.subscribers >= max {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w (%d)", ErrTooManySubscribers, max)
	}
	s.subscribers++
	n := s.subscribers
	s.mu.Unlock()
	s.registry.subscribers.Add(1)
	s.emit(EventSubscribers, n)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.subscribers--
			n := s.subscribers
			s.mu.Unlock()
			s.registry.subscribers.Add(-1)
			s.emit(EventSubscribers, n)
		})
	}, nil
}

// Reservation is a place asked for by a subscriber still connecting (a WHEP offer
// answered, its peer not yet connected): it counts against the session's budget of
// connecting subscribers, not against its subscribers, until Confirm.
type Reservation struct {
	s         *Session
	mu        sync.Mutex
	confirmed bool
	released  bool
}

// Reserve takes a place for a subscriber still connecting. It is refused when the
// session is closed, already has MaxSubscribers subscribers (no place would be
// left when it connects), or already has MaxSubscribers reservations.
func (s *Session) Reserve() (*Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSessionClosed
	}
	if max := s.registry.cfg.MaxSubscribers; max > 0 {
		if s.subscribers >= max {
			return nil, fmt.Errorf("%w (%d)", ErrTooManySubscribers, max)
		}
		if s.connecting >= max {
			return nil, fmt.Errorf("%w: %d viewers are still connecting", ErrTooManySubscribers, s.connecting)
		}
	}
	s.connecting++
	return &Reservation{s: s}, nil
}

// Confirm turns the reservation into a subscriber, counted like AddSubscriber's,
// once its peer has connected. It fails with ErrTooManySubscribers when others
// filled the session in the meantime (the reservation is then released), and
// with ErrSessionClosed after Release or when the session closed.
func (r *Reservation) Confirm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released || r.confirmed {
		return ErrSessionClosed
	}
	s := r.s
	s.mu.Lock()
	if s.closed {
		s.connecting--
		s.mu.Unlock()
		r.released = true
		return ErrSessionClosed
	}
	if max := s.registry.cfg.MaxSubscribers; max > 0 && s.subscribers >= max {
		s.connecting--
		s.mu.Unlock()
		r.released = true
		return fmt.Errorf("%w (%d)", ErrTooManySubscribers, max)
	}
	s.connecting--
	s.subscribers++
	n := s.subscribers
	s.mu.Unlock()
	r.confirmed = true
	s.registry.subscribers.Add(1)
	s.emit(EventSubscribers, n)
	return nil
}

// Release gives the place back, whether still connecting or confirmed. Calling it
// more than once is harmless.
func (r *Reservation) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return
	}
	r.released = true
	s := r.s
	s.mu.Lock()
	if !r.confirmed {
		s.connecting--
		s.mu.Unlock()
		return
	}
	s.subscribers--
	n := s.subscribers
	s.mu.Unlock()
	s.registry.subscribers.Add(-1)
	s.emit(EventSubscribers, n)
}

// Connecting returns the number of reservations not yet confirmed.
func (s *Session) Connecting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connecting
}

// Subscribers returns the current consumer count.
func (s *Session) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribers
}

// Publication returns a publication by name.
func (s *Session) Publication(name string) (*Publication, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pubs[name]
	return p, ok
}

// Publications returns a snapshot of the session's publications, by name.
func (s *Session) Publications() []PublicationInfo {
	s.mu.Lock()
	pubs := make([]*Publication, 0, len(s.pubs))
	for _, p := range s.pubs {
		pubs = append(pubs, p)
	}
	s.mu.Unlock()
	infos := make([]PublicationInfo, 0, len(pubs))
	for _, p := range pubs {
		infos = append(infos, p.Info())
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos
}

// Live reports whether the trainer publication exists (live or within its grace
// period).
func (s *Session) Live() bool {
	_, ok := s.Publication(TrainerPublication)
	return ok
}

// Claim makes the caller the source of the named publication, creating it when
// needed. If another source holds it (the trainer reconnected from a new
// connection), that source's onReplaced runs (on this goroutine, must not block)
// and its lease stops counting. The tracks of the publication stay: the new source
// continues them.
func (s *Session) Claim(name string, onReplaced func()) (*Lease, error) {
	return s.claim(name, onReplaced, false)
}

// ClaimRelay is Claim for a relay from another cluster node: the publication is
// marked Relayed (its source is the copy of a publication live on another node), so
// the recorder and the programme leave it to the origin. A later Claim (a publisher
// connected here) clears the mark.
func (s *Session) ClaimRelay(name string, onReplaced func()) (*Lease, error) {
	return s.claim(name, onReplaced, true)
}

func (s *Session) claim(name string, onReplaced func(), relayed bool) (*Lease, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	p, existed := s.pubs[name]
	if !existed {
		p = &Publication{name: name, session: s, started: time.Now()}
		s.pubs[name] = p
	}
	var replaced func()
	p.gen++
	if p.owner != nil {
		replaced = p.owner.onReplaced
	}
	l := &Lease{pub: p, gen: p.gen, onReplaced: onReplaced}
	p.owner = l
	// A relayed publication whose publisher now connects here (this node became its
	// origin) is shown again to the watchers: the recorder skipped its tracks.
	var localised []*Track
	var watchers []func(*Track)
	if p.relayed && !relayed {
		localised = slices.Clone(p.tracks)
		for _, fn := range s.watchers {
			watchers = append(watchers, fn)
		}
	}
	p.relayed = relayed
	wasPaused := p.paused
	p.paused = false
	if p.graceTimer != nil {
		p.graceTimer.Stop()
		p.graceTimer = nil
	}
	s.mu.Unlock()

	if replaced != nil {
		replaced()
	}
	for _, t := range localised {
		for _, fn := range watchers {
			fn(t)
		}
	}
	switch {
	case !existed:
		s.emit(EventPublicationAdded, p.Info())
		if name == TrainerPublication {
			s.emit(EventSessionLive, nil)
		}
	case wasPaused:
		s.emit(EventPublicationResumed, p.Info())
	}
	return l, nil
}

// removePublication closes p's tracks and forgets it, if it is still the current
// publication under that name and gen still matches (when checkGen).
func (s *Session) removePublication(p *Publication, gen uint64, checkGen bool) bool {
	s.mu.Lock()
	if s.pubs[p.name] != p || checkGen && p.gen != gen {
		s.mu.Unlock()
		return false
	}
	delete(s.pubs, p.name)
	p.owner = nil
	if p.graceTimer != nil {
		p.graceTimer.Stop()
		p.graceTimer = nil
	}
	tracks := p.tracks
	s.mu.Unlock()
	for _, t := range tracks {
		t.close()
	}
	info := p.Info()
	info.Tracks = nil
	s.emit(EventPublicationRemoved, info)
	if p.name == TrainerPublication {
		s.emit(EventSessionEnded, nil)
	}
	s.registry.log.Info("publication removed", "session", s.id, "publication", p.name)
	return true
}

// RemovePublication ends a publication now (e.g. the floor was taken back). Its
// current source's onReplaced runs so the edge closes the connection.
func (s *Session) RemovePublication(name string) bool {
	s.mu.Lock()
	p, ok := s.pubs[name]
	var onReplaced func()
	if ok && p.owner != nil {
		onReplaced = p.owner.onReplaced
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	removed := s.removePublication(p, 0, false)
	if removed && onReplaced != nil {
		onReplaced()
	}
	return removed
}

func (s *Session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	pubs := make([]*Publication, 0, len(s.pubs))
	for _, p := range s.pubs {
		pubs = append(pubs, p)
	}
	s.mu.Unlock()
	for _, p := range pubs {
		s.RemovePublication(p.name)
	}
	s.mu.Lock()
	clear(s.watchers)
	s.mu.Unlock()
}

// Publication is what one source (the trainer, a classroom with the floor, a
// camera) publishes into a session: a named group of tracks.
type Publication struct {
	name    string
	session *Session
	started time.Time

	// Guarded by session.mu.
	gen        uint64
	owner      *Lease
	paused     bool
	graceTimer *time.Timer
	tracks     []*Track
	relayed    bool // the source is a relay from another node (ClaimRelay)
}

// Relayed reports whether the publication's current source is a relay of the same
// publication live on another cluster node: recording happens there, once.
func (p *Publication) Relayed() bool {
	p.session.mu.Lock()
	defer p.session.mu.Unlock()
	return p.relayed
}

// Name returns the publication's name, e.g. "trainer" or "site-ha-noi".
func (p *Publication) Name() string { return p.name }

// Tracks returns the publication's tracks.
func (p *Publication) Tracks() []*Track {
	p.session.mu.Lock()
	defer p.session.mu.Unlock()
	return slices.Clone(p.tracks)
}

// DerivedTrack returns the publication's track with the given local name that the
// server itself feeds, e.g. the Opus variant of a camera's G.711 audio (see
// [OpusVariant]), creating it when needed and showing a new one to the session's
// watchers. It leaves the publication's source and lease alone: the track lives and
// ends with the publication, or earlier by [Publication.RemoveDerived]. A track of
// that name with another kind or codec is replaced. It fails with ErrNotPublishing
// once the publication was removed.
func (p *Publication) DerivedTrack(local string, kind Kind, codec Codec) (*Track, error) {
	return p.track(local, kind, codec, nil, nil)
}

// track is Lease.Track and DerivedTrack: it returns p's track named local, fed from
// a source whose keyframe requests go to requestKeyframe, creating it (or replacing
// one of another kind or codec) and showing a new one to the session's watchers. It
// fails with ErrNotPublishing once p was removed or, for a lease, replaced.
func (p *Publication) track(local string, kind Kind, codec Codec, lease *Lease, requestKeyframe func()) (*Track, error) {
	s := p.session
	name := p.name + "/" + local
	s.mu.Lock()
	if s.pubs[p.name] != p || lease != nil && p.gen != lease.gen {
		s.mu.Unlock()
		return nil, ErrNotPublishing
	}
	var old *Track
	for i, t := range p.tracks {
		if t.name != name {
			continue
		}
		if t.kind == kind && t.codec.SameFormat(codec) {
			s.mu.Unlock()
			t.SetSource(requestKeyframe)
			return t, nil
		}
		old = t
		// A new slice: removePublication may be walking the old one.
		p.tracks = slices.Concat(p.tracks[:i], p.tracks[i+1:])
		break
	}
	t := newTrack(name, kind, codec, s.registry.stats, s.registry.cfg.TrackOptions)
	t.derived = lease == nil
	t.SetSource(requestKeyframe)
	p.tracks = append(p.tracks, t)
	watchers := make([]func(*Track), 0, len(s.watchers))
	for _, fn := range s.watchers {
		watchers = append(watchers, fn)
	}
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	for _, fn := range watchers {
		fn(t)
	}
	return t, nil
}

// RemoveDerived ends a track made by [Publication.DerivedTrack] before its
// publication ends (what fed it stopped): its sinks are told, and it leaves the
// publication. It does nothing for a track that is not the publication's.
func (p *Publication) RemoveDerived(t *Track) {
	s := p.session
	s.mu.Lock()
	i := slices.Index(p.tracks, t)
	if i < 0 {
		s.mu.Unlock()
		return
	}
	// A new slice: removePublication may be walking the old one (this can run
	// from a sink's TrackEnded while it closes the publication's tracks).
	p.tracks = slices.Concat(p.tracks[:i], p.tracks[i+1:])
	s.mu.Unlock()
	t.close()
}

// PublicationInfo is a publication's state for APIs and events.
type PublicationInfo struct {
	Name    string      `json:"name"`
	Paused  bool        `json:"paused"`
	Started time.Time   `json:"started"`
	Tracks  []TrackInfo `json:"tracks,omitempty"`
	// Relayed is true when the source is a relay from another cluster node.
	Relayed bool `json:"relayed,omitempty"`
}

// TrackInfo is a track's state for APIs and events.
type TrackInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Codec   string `json:"codec"`
	Sinks   int    `json:"sinks"`
	Packets uint64 `json:"packets"`
	// BrowserPlayable is false for codecs WebRTC peers cannot receive (AAC).
	BrowserPlayable bool `json:"browser_playable"`
}

// Info returns the publication's current state.
func (p *Publication) Info() PublicationInfo {
	p.session.mu.Lock()
	info := PublicationInfo{Name: p.name, Paused: p.paused, Started: p.started, Relayed: p.relayed}
	tracks := slices.Clone(p.tracks)
	p.session.mu.Unlock()
	for _, t := range tracks {
		info.Tracks = append(info.Tracks, TrackInfo{
			Name: t.name, Kind: t.kind.String(), Codec: t.codec.MimeType,
			Sinks: t.Sinks(), Packets: t.Packets(),
			BrowserPlayable: t.codec.MimeType != MimeAAC,
		})
	}
	return info
}

// Lease is one source's hold on a publication, from Claim until Release or End.
type Lease struct {
	pub        *Publication
	gen        uint64
	onReplaced func()
}

// Publication returns the leased publication.
func (l *Lease) Publication() *Publication { return l.pub }

// Current reports whether the lease still holds its publication.
func (l *Lease) Current() bool {
	s := l.pub.session
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pubs[l.pub.name] == l.pub && l.pub.gen == l.gen
}

// Track returns the publication's track with the given local name (e.g. "video",
// "audio", "screen"; the session-wide name is "<publication>/<local>"), creating it
// if needed, and makes this lease's source feed it. A track that exists with another
// kind or codec is replaced (the codec as its sinks set it up: MIME type, clock
// rate, channels, AAC's config; see Codec.SameFormat), so that a source back within
// the grace with another format is not decoded with the old one. requestKeyframe is
// as for Track.SetSource.
func (l *Lease) Track(local string, kind Kind, codec Codec, requestKeyframe func()) (*Track, error) {
	return l.pub.track(local, kind, codec, l, requestKeyframe)
}

// RemoveTracks ends the publication's tracks that its sources fed (derived tracks
// are left alone) and whose local name drop reports, if this lease still holds the
// publication. A source that came back with fewer streams than the one before (a
// trainer reconnecting without simulcast) would otherwise leave the others in the
// publication, silent, until it ends. Each removed track's sinks are told
// ([TrackEnder]): a [LayerFollower] moves to the layers that remain. drop runs with
// the session's lock held and must not call into the session. It returns the local
// names removed.
func (l *Lease) RemoveTracks(drop func(local string) bool) []string {
	p := l.pub
	s := p.session
	prefix := p.name + "/"
	s.mu.Lock()
	if s.pubs[p.name] != p || p.gen != l.gen {
		s.mu.Unlock()
		return nil
	}
	var removed []*Track
	for _, t := range p.tracks {
		if !t.derived && drop(strings.TrimPrefix(t.name, prefix)) {
			removed = append(removed, t)
		}
	}
	if len(removed) > 0 {
		// A new slice: removePublication may be walking the old one.
		p.tracks = slices.DeleteFunc(slices.Clone(p.tracks), func(t *Track) bool { return slices.Contains(removed, t) })
	}
	s.mu.Unlock()
	names := make([]string, 0, len(removed))
	for _, t := range removed {
		t.close()
		names = append(names, strings.TrimPrefix(t.name, prefix))
	}
	return names
}

// Release says the source went away (its connection failed or closed). The
// publication pauses and is removed after the registry's grace period unless a new
// source claims it first. Release after replacement is a no-op.
func (l *Lease) Release() {
	s := l.pub.session
	grace := s.registry.cfg.Grace
	s.mu.Lock()
	if s.pubs[l.pub.name] != l.pub || l.pub.gen != l.gen || l.pub.paused {
		s.mu.Unlock()
		return
	}
	l.pub.owner = nil
	if grace <= 0 {
		s.mu.Unlock()
		s.removePublication(l.pub, l.gen, true)
		return
	}
	l.pub.paused = true
	gen := l.gen
	pub := l.pub
	l.pub.graceTimer = time.AfterFunc(grace, func() { s.removePublication(pub, gen, true) })
	s.mu.Unlock()
	s.emit(EventPublicationPaused, pub.Info())
}

// End removes the publication now, if this lease still holds it (the publisher said
// goodbye: WHIP DELETE).
func (l *Lease) End() { l.pub.session.removePublication(l.pub, l.gen, true) }
