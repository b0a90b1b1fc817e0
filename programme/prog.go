package programme

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"lectern/sfu"
)

const (
	// inboxSize bounds the packets handed to a programme goroutine and not yet
	// taken: a second of every source at once. Beyond it packets are dropped
	// (the goroutine fell far behind; the sources are never held up).
	inboxSize = 2048
	// trainerSilentAfter: with no trainer audio for this long while a holder
	// speaks, the mix runs on its own 20 ms clock. Long enough to ride out the
	// trainer's jitter (a studio encoder's AAC arrives through its transcoder in
	// bursts): own frames made while the trainer's packets are merely late would
	// overlap them when they arrive (the track resyncs by the wall clock).
	trainerSilentAfter = 500 * time.Millisecond
	// holderSilentAfter: a holder that has sent no audio for this long no longer
	// keeps the programme mixing (forwarding is free).
	holderSilentAfter = 2 * time.Second
	// housekeeping is how often a programme checks what no event tells it: the
	// trainer publication gone, the session's video mode, holders gone silent.
	housekeeping = 500 * time.Millisecond
	// noOpusGrace is how long a holder's non-Opus audio may wait for its Opus
	// variant before it is reported excluded.
	noOpusGrace = time.Second
)

// defaultOpus is the programme audio's codec when the trainer has no Opus track.
var defaultOpus = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: sampleRate, Channels: channels, Fmtp: "minptime=10;useinbandfec=1"}

// role says what a source sink's packets are for.
type role uint8

const (
	roleTrainerAudio role = iota + 1
	roleHolderAudio
	roleVideo
	roleScreen
)

// sink is the programme's hand on one source track: it retains each packet and
// queues it for the programme goroutine. It never decodes (it runs under the
// source track's lock on the publisher's read goroutine).
type sink struct {
	p     *prog
	track *sfu.Track
	role  role
	layer int    // programme layer fed (video, screen)
	pub   string // holder publication (holder audio)

	// Owned by the programme goroutine.
	remove func()
	dead   bool
	sprop  []byte // STAP-A of the codec's sprop-parameter-sets (video), nil if none
}

type item struct {
	s   *sink
	pkt *sfu.Packet
}

// WriteRTP implements sfu.Sink.
func (s *sink) WriteRTP(pkt *sfu.Packet) error {
	pkt.Retain()
	select {
	case s.p.in <- item{s, pkt}:
	default:
		pkt.Release()
		s.p.m.metrics.inboxDrops.Inc()
	}
	return nil
}

// TrackEnded implements sfu.TrackEnder.
func (s *sink) TrackEnded(*sfu.Track) { s.p.post(event{ended: s}) }

// event is a change the programme goroutine learns of: a track, a track's end,
// a new list of speakers.
type event struct {
	track       *sfu.Track
	ended       *sink
	speakers    []string
	setSpeakers bool
}

// holder is one mixed floor holder.
type holder struct {
	pub   string
	sink  *sink
	audio *holderAudio
	last  int64 // Nanotime of its last packet, 0 before any
}

// videoLayer is one programme video layer: the source forwarded now, and the one
// it switches to at its next keyframe.
type videoLayer struct {
	out     *sfu.Track
	cur     *sink
	pending *sink
}

// prog is one session's programme. Everything but the inbox, the events and the
// stop flag is owned by its goroutine.
type prog struct {
	m      *Manager
	sess   *sfu.Session
	id     string
	log    *slog.Logger
	cancel context.CancelFunc

	in       chan item
	stopping atomic.Bool
	evMu     sync.Mutex
	events   []event
	wake     chan struct{}

	lease    *sfu.Lease
	tracks   map[string]*sfu.Track // the session's tracks by name, the latest of each
	speakers []string
	excluded map[string]string // holder publication → reason, until it leaves the floor
	// videoSkipped: holders whose camera speaker mode cannot show (another codec
	// than the programme's), reported once until they leave the floor.
	videoSkipped map[string]bool
	// noOpusSince: holders whose audio has no Opus form yet, since when (0: reported).
	noOpusSince map[string]int64

	// Audio.
	audioOut     *sfu.Track
	trainerAudio *sink
	holders      []*holder
	mixed        [MaxMixed]*holderAudio // activeHolders' result, reused
	spare        []*holderAudio         // decoders of holders gone, reused
	mix          *mixer
	mixing       bool
	lastTrainer  int64 // Nanotime of the trainer's last audio packet
	trainerPT    uint8
	ownSSRC      uint32 // the mix's own stream while the trainer is silent
	ownSeq       uint16
	ownTS        uint32
	ticker       *time.Ticker
	mixErrLogged bool

	// Video and screen.
	video      [sfu.MaxLayers]videoLayer
	videoBase  string // the stream the programme video shows (or switches to)
	videoCodec sfu.Codec
	screens    [sfu.MaxLayers]*sink
	screenOut  [sfu.MaxLayers]*sfu.Track

	scratch rtp.Packet
}

func newProg(m *Manager, s *sfu.Session, cancel context.CancelFunc, speakers []string) *prog {
	return &prog{
		m: m, sess: s, id: s.ID(), log: m.log.With("session", s.ID()), cancel: cancel,
		in: make(chan item, inboxSize), wake: make(chan struct{}, 1),
		tracks: map[string]*sfu.Track{}, speakers: speakers, excluded: map[string]string{},
		noOpusSince: map[string]int64{}, videoSkipped: map[string]bool{},
		ownSSRC: rand.Uint32() | 1, ownSeq: uint16(rand.Uint32()), ownTS: rand.Uint32(),
	}
}

func (p *prog) stop() {
	p.stopping.Store(true)
	p.cancel()
}

func (p *prog) isStopping() bool { return p.stopping.Load() }

// post hands an event to the goroutine; it never blocks.
func (p *prog) post(ev event) {
	p.evMu.Lock()
	p.events = append(p.events, ev)
	p.evMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *prog) run(ctx context.Context) {
	defer p.stopping.Store(true)
	cancelWatch := p.sess.Watch(func(t *sfu.Track) { p.post(event{track: t}) })
	house := time.NewTicker(housekeeping)
	defer func() {
		house.Stop()
		cancelWatch()
		p.shutdown()
	}()
	if !p.reconcile() {
		return
	}
	for {
		var tick <-chan time.Time
		if p.ticker != nil {
			tick = p.ticker.C
		}
		select {
		case <-ctx.Done():
			return
		case it := <-p.in:
			p.handle(it)
		case <-p.wake:
			if !p.takeEvents() || !p.reconcile() {
				return
			}
		case <-tick:
			p.tick()
		case <-house.C:
			if !p.reconcile() {
				return
			}
		}
	}
}

// takeEvents applies the queued events; false when the programme must end.
func (p *prog) takeEvents() bool {
	p.evMu.Lock()
	evs := p.events
	p.events = nil
	p.evMu.Unlock()
	for _, ev := range evs {
		switch {
		case ev.setSpeakers:
			p.speakers = ev.speakers
			for pub := range p.excluded {
				if !slices.Contains(p.speakers, pub) {
					delete(p.excluded, pub) // a new grant gets a new chance
				}
			}
			for pub := range p.noOpusSince {
				if !slices.Contains(p.speakers, pub) {
					delete(p.noOpusSince, pub)
				}
			}
			for pub := range p.videoSkipped {
				if !slices.Contains(p.speakers, pub) {
					delete(p.videoSkipped, pub)
				}
			}
		case ev.track != nil:
			if !strings.HasPrefix(ev.track.Name(), Publication+"/") {
				p.tracks[ev.track.Name()] = ev.track
			}
		case ev.ended != nil:
			p.detach(ev.ended)
		}
	}
	return true
}

// shutdown detaches every source, drops what is queued and ends the programme
// publication.
func (p *prog) shutdown() {
	if p.ticker != nil {
		p.ticker.Stop()
	}
	p.detach(p.trainerAudio)
	for _, h := range p.holders {
		p.detach(h.sink)
	}
	for r := range p.video {
		p.detach(p.video[r].cur)
		p.detach(p.video[r].pending)
	}
	for _, s := range p.screens {
		p.detach(s)
	}
	for {
		select {
		case it := <-p.in:
			it.pkt.Release()
			continue
		default:
		}
		break
	}
	if p.mixing {
		p.m.metrics.mixing.Dec()
	}
	if p.lease != nil {
		p.lease.End()
	}
}

// attach puts a sink of that role on t; live (no fast start): video starts at
// the source's next keyframe, which the track asks for.
func (p *prog) attach(t *sfu.Track, r role, layer int) *sink {
	s := &sink{p: p, track: t, role: r, layer: layer}
	if r == roleVideo {
		s.sprop = spropSTAPA(t.Codec())
	}
	s.remove = t.AddSinkLive(s)
	return s
}

// detach removes s from its track; its packets still queued are dropped.
func (p *prog) detach(s *sink) {
	if s == nil || s.dead {
		return
	}
	s.dead = true
	s.remove()
}

// open returns the live track of that name, nil when none.
func (p *prog) open(name string) *sfu.Track {
	t := p.tracks[name]
	if t == nil || t.Closed() {
		return nil
	}
	return t
}

// reconcile makes the sources and programme tracks what the session's state asks
// for; false when the programme must end (the trainer publication is gone).
func (p *prog) reconcile() bool {
	if p.stopping.Load() {
		return false
	}
	trainer, ok := p.sess.Publication(sfu.TrainerPublication)
	if !ok {
		return false
	}
	if trainer.Relayed() && p.lease == nil {
		// A cluster edge: the origin makes the programme, relayed here like any
		// publication; a second one made from relayed tracks would fight it.
		return false
	}
	for name, t := range p.tracks {
		if t.Closed() {
			delete(p.tracks, name)
		}
	}
	if p.lease == nil {
		if !p.hasTrainerTrack() {
			return true // claimed when the trainer's first track appears
		}
		l, err := p.sess.Claim(Publication, func() {
			// Someone else took the name: this programme stops feeding it.
			p.stop()
		})
		if err != nil {
			p.log.Warn("programme: cannot claim the publication", "err", err)
			return false
		}
		p.lease = l
		p.log.Info("programme started")
	}
	if !p.lease.Current() {
		return false
	}
	if err := p.reconcileTrainer(); err != nil {
		return p.fail(err)
	}
	if err := p.reconcileHolders(); err != nil {
		return p.fail(err)
	}
	if err := p.reconcileVideo(); err != nil {
		return p.fail(err)
	}
	return true
}

func (p *prog) fail(err error) bool {
	if errors.Is(err, sfu.ErrNotPublishing) {
		return false // the programme publication was removed or taken
	}
	p.log.Error("programme: stopped", "err", err)
	return false
}

func (p *prog) hasTrainerTrack() bool {
	for name := range p.tracks {
		if strings.HasPrefix(name, sfu.TrainerPublication+"/") {
			return true
		}
	}
	return false
}

// trainerAudioSource is the trainer's Opus audio: its own track, or the Opus
// variant of a track in another codec.
func (p *prog) trainerAudioSource() *sfu.Track {
	name := sfu.TrainerPublication + "/audio"
	if t := p.open(name); t != nil && t.Codec().MimeType == sfu.MimeOpus {
		return t
	}
	return p.open(sfu.OpusVariant(name))
}

// reconcileTrainer follows the trainer's audio and slides and makes the
// programme's tracks for them.
func (p *prog) reconcileTrainer() error {
	src := p.trainerAudioSource()
	if src != nil && (p.trainerAudio == nil || p.trainerAudio.dead || p.trainerAudio.track != src) {
		codec := src.Codec()
		codec.MimeType = sfu.MimeOpus
		if err := p.ensureAudioOut(codec); err != nil {
			return err
		}
		p.detach(p.trainerAudio)
		p.trainerAudio = p.attach(src, roleTrainerAudio, 0)
	}
	for r := range sfu.MaxLayers {
		t := p.open(sfu.LayerName(sfu.TrainerPublication+"/screen", r))
		if t == nil || p.screens[r] != nil && !p.screens[r].dead && p.screens[r].track == t {
			continue
		}
		out, err := p.lease.Track(sfu.LayerName("screen", r), t.Kind(), t.Codec(), t.RequestKeyframe)
		if err != nil {
			return err
		}
		p.detach(p.screens[r])
		p.screenOut[r] = out
		p.screens[r] = p.attach(t, roleScreen, r)
	}
	return nil
}

func (p *prog) ensureAudioOut(codec sfu.Codec) error {
	if p.audioOut != nil && !p.audioOut.Closed() && p.audioOut.Codec() == codec {
		return nil
	}
	if p.audioOut != nil && codec == defaultOpus {
		return nil // keep the trainer's codec line once made
	}
	out, err := p.lease.Track("audio", sfu.KindAudio, codec, nil)
	if err != nil {
		return err
	}
	p.audioOut = out
	return nil
}

// holderAudioSource returns the Opus audio of a floor holder, or the reason it
// has none that can be mixed ("" and nil: it does not publish audio).
func (p *prog) holderAudioSource(pub string) (*sfu.Track, string) {
	name := pub + "/audio"
	t := p.open(name)
	if t == nil {
		if v := p.open(sfu.OpusVariant(name)); v != nil {
			return v, ""
		}
		return nil, ""
	}
	if t.Codec().MimeType == sfu.MimeOpus {
		return t, ""
	}
	if v := p.open(sfu.OpusVariant(name)); v != nil {
		return v, ""
	}
	return nil, excludedCodec
}

// reconcileHolders mixes the first MaxMixed speakers whose audio can be mixed.
func (p *prog) reconcileHolders() error {
	var want []*sfu.Track
	var wantPubs []string
	for _, pub := range p.speakers {
		if len(want) == MaxMixed {
			break
		}
		if pub == sfu.TrainerPublication || pub == Publication || p.excluded[pub] != "" {
			continue
		}
		t, reason := p.holderAudioSource(pub)
		if reason != "" {
			p.noOpus(pub)
			continue
		}
		delete(p.noOpusSince, pub)
		if t != nil {
			want, wantPubs = append(want, t), append(wantPubs, pub)
		}
	}
	// Drop holders no longer wanted (or whose track changed).
	kept := p.holders[:0]
	for _, h := range p.holders {
		i := slices.Index(wantPubs, h.pub)
		if i >= 0 && !h.sink.dead && want[i] == h.sink.track {
			kept = append(kept, h)
			continue
		}
		p.detach(h.sink)
	}
	clear(p.holders[len(kept):])
	p.holders = kept
	for i, t := range want {
		if slices.ContainsFunc(p.holders, func(h *holder) bool { return h.pub == wantPubs[i] }) {
			continue
		}
		// A new decoder per grant: libopus's state of an earlier speaker would
		// only add noise (hraban/opus has no reset for decoders).
		a, err := newHolderAudio()
		if err != nil {
			p.exclude(wantPubs[i], excludedDecode, "err", err)
			continue
		}
		h := &holder{pub: wantPubs[i], audio: a}
		h.sink = p.attach(t, roleHolderAudio, 0)
		h.sink.pub = h.pub
		p.holders = append(p.holders, h)
	}
	// Keep the grant order among the mixed.
	slices.SortStableFunc(p.holders, func(a, b *holder) int {
		return slices.Index(p.speakers, a.pub) - slices.Index(p.speakers, b.pub)
	})
	if len(p.holders) > 0 {
		if p.audioOut == nil {
			if err := p.ensureAudioOut(defaultOpus); err != nil {
				return err
			}
		}
		if p.mix == nil {
			m, err := newMixer()
			if err != nil {
				// Without a mixer the trainer is forwarded: heard, without the question.
				if !p.mixErrLogged {
					p.mixErrLogged = true
					p.log.Error("programme: cannot mix", "err", err)
				}
				for _, h := range p.holders {
					p.detach(h.sink)
				}
				p.holders = nil
				return nil
			}
			p.mix = m
		}
		if p.ticker == nil {
			p.ticker = time.NewTicker(tickFrame * time.Second / sampleRate)
		}
	} else if p.ticker != nil {
		p.ticker.Stop()
		p.ticker = nil
	}
	p.updateMixing(sfu.Nanotime())
	return nil
}

// exclude leaves a holder out of the mix until it leaves the floor: one log line
// and a metric.
func (p *prog) exclude(pub, reason string, args ...any) {
	if p.excluded[pub] != "" {
		return
	}
	p.excluded[pub] = reason
	p.m.metrics.excluded.WithLabelValues(reason).Inc()
	p.log.Warn("programme: floor holder excluded from the mix", append([]any{"publication", pub, "reason", reason}, args...)...)
}

// noOpus notes a holder whose audio is not Opus and has no Opus variant. The
// transcoder makes the variant moments after the track appears, so the holder is
// reported excluded (once per grant) only when none came within noOpusGrace; it is
// mixed as soon as one comes.
func (p *prog) noOpus(pub string) {
	now := sfu.Nanotime()
	since, ok := p.noOpusSince[pub]
	if !ok {
		p.noOpusSince[pub] = now
		return
	}
	if since == 0 || now-since < int64(noOpusGrace) {
		return
	}
	p.noOpusSince[pub] = 0 // reported
	codec := ""
	if t := p.open(pub + "/audio"); t != nil {
		codec = t.Codec().MimeType
	}
	p.m.metrics.excluded.WithLabelValues(excludedCodec).Inc()
	p.log.Warn("programme: floor holder excluded from the mix", "publication", pub, "reason", excludedCodec, "codec", codec)
}

// updateMixing switches between forwarding and mixing: mixing while a mixed
// holder has sent audio recently.
func (p *prog) updateMixing(now int64) {
	mixing := false
	for _, h := range p.holders {
		if h.last != 0 && now-h.last < int64(holderSilentAfter) {
			mixing = true
			break
		}
	}
	if mixing == p.mixing {
		return
	}
	p.mixing = mixing
	p.m.metrics.switches.WithLabelValues(switchAudio).Inc()
	if mixing {
		p.m.metrics.mixing.Inc()
		if err := p.mix.restart(); err != nil {
			p.log.Warn("programme: restarting the mixer", "err", err)
		}
		p.mixErrLogged = false
	} else {
		p.m.metrics.mixing.Dec()
	}
}

// handle takes one source packet.
func (p *prog) handle(it item) {
	defer it.pkt.Release()
	s := it.s
	if s.dead {
		return
	}
	switch s.role {
	case roleTrainerAudio:
		p.onTrainerAudio(it.pkt)
	case roleHolderAudio:
		p.onHolderAudio(s, it.pkt)
	case roleVideo:
		p.onVideo(s, it.pkt)
	case roleScreen:
		p.write(p.screenOut[s.layer], &it.pkt.Header, it.pkt.Payload)
	}
}

// write writes one packet to a programme track; the payload is copied.
func (p *prog) write(out *sfu.Track, h *rtp.Header, payload []byte) {
	if out == nil {
		return
	}
	p.scratch.Header = *h
	p.scratch.Payload = payload
	if err := out.WriteRTP(&p.scratch); err != nil && errors.Is(err, sfu.ErrTrackClosed) {
		p.post(event{}) // reconcile: the programme publication may be gone
	}
	p.scratch.Payload = nil
}

func (p *prog) onTrainerAudio(pkt *sfu.Packet) {
	now := sfu.Nanotime()
	p.lastTrainer = now
	p.trainerPT = pkt.Header.PayloadType
	if len(p.holders) > 0 {
		p.updateMixing(now)
	}
	if !p.mixing {
		p.write(p.audioOut, &pkt.Header, pkt.Payload)
		return
	}
	start := time.Now()
	out, err := p.mix.mixTrainer(pkt.Payload, p.activeHolders())
	p.m.metrics.mixSeconds.Add(time.Since(start).Seconds())
	if err != nil {
		// The trainer is heard anyway: the packet goes out as it came.
		if !p.mixErrLogged {
			p.mixErrLogged = true
			p.log.Warn("programme: mixing failed; forwarding the trainer", "err", err)
		}
		out = pkt.Payload
	}
	// The trainer's header: the programme runs on the trainer's clock and its
	// sequence numbers and timestamps stay continuous across switches.
	p.write(p.audioOut, &pkt.Header, out)
}

// activeHolders returns the holders being mixed (their decoders' buffers).
func (p *prog) activeHolders() []*holderAudio {
	n := 0
	for _, h := range p.holders {
		if n < MaxMixed {
			p.mixed[n] = h.audio
			n++
		}
	}
	return p.mixed[:n]
}

func (p *prog) onHolderAudio(s *sink, pkt *sfu.Packet) {
	var h *holder
	for _, x := range p.holders {
		if x.sink == s {
			h = x
		}
	}
	if h == nil {
		return
	}
	exclude, err := h.audio.push(pkt.Header.SequenceNumber, pkt.Payload)
	if err != nil {
		if exclude {
			p.exclude(h.pub, excludedDecode, "err", err)
			if rerr := p.reconcileHolders(); rerr != nil {
				p.log.Warn("programme: holders", "err", rerr)
			}
		}
		return
	}
	now := sfu.Nanotime()
	h.last = now
	p.updateMixing(now)
}

// tick mixes the holders on the programme's own clock while the trainer sends
// no audio.
func (p *prog) tick() {
	now := sfu.Nanotime()
	p.updateMixing(now)
	if !p.mixing || now-p.lastTrainer < int64(trainerSilentAfter) || len(p.in) > 0 {
		// Mixing on the trainer's clock, or behind: trainer packets may be queued.
		return
	}
	start := time.Now()
	out, err := p.mix.mixAlone(p.activeHolders())
	p.m.metrics.mixSeconds.Add(time.Since(start).Seconds())
	if err != nil {
		if !p.mixErrLogged {
			p.mixErrLogged = true
			p.log.Warn("programme: mixing failed", "err", err)
		}
		return
	}
	pt := p.trainerPT
	if pt == 0 {
		pt = 111
	}
	// The programme's own SSRC: the track resyncs its sequence and timestamps
	// on the change, and again when the trainer's packets return.
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: p.ownSeq, Timestamp: p.ownTS, SSRC: p.ownSSRC}
	p.ownSeq++
	p.ownTS += tickFrame
	p.write(p.audioOut, &h, out)
}
