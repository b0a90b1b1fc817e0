package peer

import (
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// Track local names a publisher's media sections map to, in offer order: the first
// video section is the camera, the second the screen share (slides); one audio.
const (
	LocalVideo  = "video"
	LocalScreen = "screen"
	LocalAudio  = "audio"
)

// publisherNames maps an offer's media sections to local track names.
func publisherNames(sections []offerSection) (map[string]string, error) {
	names := map[string]string{}
	videos, audios := 0, 0
	for _, s := range sections {
		switch s.kind {
		case sfu.KindVideo:
			if videos == 2 {
				return nil, fmt.Errorf("%w: a publisher sends at most two video streams (camera, then screen share)", ErrBadOffer)
			}
			names[s.mid] = []string{LocalVideo, LocalScreen}[videos]
			videos++
		case sfu.KindAudio:
			if audios == 1 {
				return nil, fmt.Errorf("%w: a publisher sends at most one audio stream", ErrBadOffer)
			}
			names[s.mid] = LocalAudio
			audios++
		}
	}
	return names, nil
}

// Publish answers a WHIP offer: once connected, the connection is the source of the
// named publication of sess (replacing a previous source, which is closed). It
// returns the resource and the SDP answer.
func (e *Edge) Publish(sess *sfu.Session, publication, offer string) (*Resource, string, error) {
	sections, err := parseOffer(offer)
	if err != nil {
		return nil, "", err
	}
	names, err := publisherNames(sections)
	if err != nil {
		return nil, "", err
	}
	// Layers the edge ignores are taken out of the offer, so the answer tells the
	// publisher not to send them; the resource keeps the edited offer for ICE restarts.
	offer = withoutIgnoredRids(offer, sections)
	pc, err := e.pubAPI.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, "", fmt.Errorf("new peer connection: %w", err)
	}
	r := e.newResource(KindWHIP, sess.ID(), pc, offer)
	r.log = r.log.With("publication", publication)
	p := &publisher{r: r, names: names, ranks: map[string]map[string]int{}, plis: make(chan uint32, 8), leaseReady: make(chan struct{}),
		feeds: map[string]bool{}, bases: map[string]bool{}, swept: map[string]bool{}}
	for _, s := range sections {
		if s.simulcast == nil {
			continue
		}
		p.ranks[s.mid] = s.simulcast.ranks
		for _, ig := range s.simulcast.ignored {
			r.log.Info("simulcast layer ignored", "mid", s.mid, "rid", ig.rid, "reason", ig.reason)
		}
		r.log.Info("simulcast offered", "mid", s.mid, "layers", s.simulcast.ranks)
	}
	for mid, local := range names {
		p.bases[local] = true
		ranks, simulcast := p.ranks[mid]
		if !simulcast {
			p.feeds[local] = true
		}
		for _, rank := range ranks {
			p.feeds[sfu.LayerName(local, rank)] = true
		}
	}
	pc.OnTrack(p.onTrack)

	ans, err := answer(pc, offer)
	if err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	lease, err := sess.Claim(publication, r.cancel)
	if err != nil {
		_ = pc.Close()
		return nil, "", fmt.Errorf("claim publication %q: %w", publication, err)
	}
	p.lease = lease
	close(p.leaseReady)
	r.addCloseHook(func() {
		if r.deleted.Load() {
			lease.End()
		} else {
			lease.Release()
		}
	})
	if err := r.start(); err != nil {
		_ = pc.Close()
		lease.End()
		return nil, "", err
	}
	r.goFn(p.sendKeyframeRequests)
	r.log.Info("publishing", "sections", len(sections))
	return r, ans, nil
}

// publisher is the WHIP side of a resource.
type publisher struct {
	r          *Resource
	names      map[string]string         // mid -> local track name
	ranks      map[string]map[string]int // mid -> rid -> layer rank, for simulcast sections
	plis       chan uint32               // SSRCs that need a keyframe
	lease      *sfu.Lease
	leaseReady chan struct{}
	// feeds are the local names of the tracks this connection feeds (a simulcast
	// section's layers that have a rank), bases the streams they belong to ("video",
	// "screen", "audio"); both fixed before the first track.
	feeds, bases map[string]bool
	sweepMu      sync.Mutex
	swept        map[string]bool // streams whose stale layers were removed; "" others
}

// onTrack runs on a pion goroutine for each incoming stream.
func (p *publisher) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	select {
	case <-p.leaseReady:
	case <-p.r.ctx.Done():
		return
	}
	mid := ""
	for _, tr := range p.r.pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
		}
	}
	local, ok := p.names[mid]
	if !ok {
		p.r.log.Warn("stream for an unknown media section", "mid", mid)
		return
	}
	if rid := remote.RID(); rid != "" {
		// One layer of a simulcast section: pion only reports rids the (edited)
		// offer declares, but a paused one has no rank.
		rank, ok := p.ranks[mid][rid]
		if !ok {
			p.r.log.Warn("simulcast stream for a layer not taken; ignored", "mid", mid, "rid", rid)
			return
		}
		local = sfu.LayerName(local, rank)
	}
	kind := sfu.KindVideo
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		kind = sfu.KindAudio
	}
	ssrc := uint32(remote.SSRC())
	track, err := p.lease.Track(local, kind, sfuCodec(remote.Codec()), func() {
		select {
		case p.plis <- ssrc:
		default: // one is pending already
		}
	})
	if err != nil {
		p.r.log.Info("publication taken over; not forwarding", "track", local, "err", err)
		p.r.cancel()
		return
	}
	p.r.log.Info("track started", "track", track.Name(), "codec", remote.Codec().MimeType, "ssrc", ssrc, "rid", remote.RID())
	p.r.goFn(func() { p.forward(remote, track, local) })
	rid := remote.RID()
	p.r.goFn(func() { drainRTCP(receiver, rid) })
}

// forward copies the remote stream into the track (local) until the connection
// ends. It reuses one buffer and one packet: no allocation per packet.
func (p *publisher) forward(remote *webrtc.TrackRemote, track *sfu.Track, local string) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	done := p.r.ctx.Done()
	sending := false
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-done: // replaced by a newer source: it alone feeds the track now
			return
		default:
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			track.Stats().PacketsRejected.Add(1)
			continue
		}
		err = track.WriteRTP(&pkt)
		if errors.Is(err, sfu.ErrTrackClosed) {
			p.r.cancel() // the publication was removed (e.g. the floor was taken back)
			return
		}
		if err == nil && !sending {
			sending = true
			p.removeStale(local)
		}
	}
}

// removeStale ends the publication's tracks this connection does not feed, once its
// stream local has written its first packet: the other layers of local's stream
// that a previous source sent (a trainer back without simulcast leaves video~1 and
// video~2), and, at the first stream that sends, the tracks of streams it does not
// send at all (a screen share no longer shared). Not before: a layer follower on a
// removed layer moves to the layers that send, and until local's first packet its
// track is as silent as the ones removed.
func (p *publisher) removeStale(local string) {
	base, _ := sfu.SplitLayer(local)
	p.sweepMu.Lock()
	own, others := !p.swept[base], !p.swept[""]
	p.swept[base], p.swept[""] = true, true
	p.sweepMu.Unlock()
	if !own && !others {
		return
	}
	removed := p.lease.RemoveTracks(func(name string) bool {
		if p.feeds[name] {
			return false
		}
		b, _ := sfu.SplitLayer(name)
		return own && b == base || others && !p.bases[b]
	})
	if len(removed) > 0 {
		p.r.log.Info("tracks the previous source fed and this one does not removed", "tracks", removed, "after", local)
	}
}

// sendKeyframeRequests turns the tracks' (already coalesced) keyframe requests into
// PLIs, off the consumers' goroutines.
func (p *publisher) sendKeyframeRequests() {
	for {
		select {
		case ssrc := <-p.plis:
			if err := p.r.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
				p.r.log.Debug("send PLI", "err", err)
			}
		case <-p.r.ctx.Done():
			return
		}
	}
}

// drainRTCP reads a receiver's incoming RTCP (sender reports) so the interceptors see
// it; pion requires someone to read it. A simulcast receiver has one RTCP stream per
// rid.
func drainRTCP(receiver *webrtc.RTPReceiver, rid string) {
	buf := make([]byte, 1500)
	for {
		var err error
		if rid == "" {
			_, _, err = receiver.Read(buf)
		} else {
			_, _, err = receiver.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
	}
}
