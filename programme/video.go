package programme

import (
	"encoding/base64"
	"strings"

	"lectern/sfu"
)

// reconcileVideo makes the programme's video layers (one per layer of the
// trainer's camera) and points each at the stream to show: the trainer's camera,
// or in speaker mode the camera of the last-granted floor holder that sends video.
// A layer switches at the new source's next keyframe; until then it forwards the
// old one.
func (p *prog) reconcileVideo() error {
	for r := range sfu.MaxLayers {
		t := p.open(sfu.LayerName(sfu.TrainerPublication+"/video", r))
		if t == nil || p.video[r].out != nil && !p.video[r].out.Closed() {
			continue
		}
		if p.videoCodec.MimeType == "" {
			p.videoCodec = t.Codec()
		}
		out, err := p.lease.Track(sfu.LayerName("video", r), sfu.KindVideo, p.videoCodec, t.RequestKeyframe)
		if err != nil {
			return err
		}
		p.video[r].out = out
	}
	base := p.wantVideoBase()
	if base != p.videoBase {
		if p.videoBase != "" {
			p.m.metrics.switches.WithLabelValues(switchVideo).Inc()
			p.log.Info("programme: video switches", "from", p.videoBase, "to", base)
		}
		p.videoBase = base
	}
	for r := range p.video {
		l := &p.video[r]
		if l.out == nil {
			continue
		}
		if l.cur != nil && l.cur.dead {
			l.cur = nil
		}
		if l.pending != nil && l.pending.dead {
			l.pending = nil
		}
		src := p.closestLayer(base, r)
		switch {
		case src == nil || l.cur != nil && l.cur.track == src:
			// Nothing else to show, or already showing it.
			p.detach(l.pending)
			l.pending = nil
		case l.pending != nil && l.pending.track == src:
			// Waiting for its keyframe.
		default:
			p.detach(l.pending)
			l.pending = p.attach(src, roleVideo, r)
		}
	}
	return nil
}

// wantVideoBase returns the base name of the stream the programme shows.
func (p *prog) wantVideoBase() string {
	trainer := sfu.TrainerPublication + "/video"
	mode := VideoTrainer
	if fn := p.m.cfg.VideoMode; fn != nil {
		if v := fn(p.id); v != "" {
			mode = v
		}
	}
	if mode != VideoSpeaker || p.videoCodec.MimeType == "" {
		return trainer
	}
	for i := len(p.speakers) - 1; i >= 0; i-- {
		pub := p.speakers[i]
		if pub == sfu.TrainerPublication || pub == Publication {
			continue
		}
		base := pub + "/video"
		other := ""
		for r := range sfu.MaxLayers {
			// No transcoding: only a camera in the programme's codec can be shown.
			if t := p.open(sfu.LayerName(base, r)); t != nil {
				if t.Codec().MimeType == p.videoCodec.MimeType {
					return base
				}
				other = t.Codec().MimeType
			}
		}
		if other != "" {
			p.skipVideo(pub, other)
		}
	}
	return trainer
}

// skipVideo reports a floor holder whose camera speaker mode passes over (it is
// in another codec than the programme's picture, and nothing transcodes video):
// once per grant, so that "the programme never showed that classroom" has an
// answer in the log and in lectern_programme_excluded_total{reason="video_codec"}.
func (p *prog) skipVideo(pub, codec string) {
	if p.videoSkipped[pub] {
		return
	}
	p.videoSkipped[pub] = true
	p.m.metrics.excluded.WithLabelValues(excludedVideoCodec).Inc()
	p.log.Info("programme: floor holder's camera not shown: another video codec than the programme's",
		"publication", pub, "codec", codec, "programme_codec", p.videoCodec.MimeType)
}

// closestLayer returns the layer of stream base nearest to rank r (the better one
// on a tie); nil when the stream has none.
func (p *prog) closestLayer(base string, r int) *sfu.Track {
	for d := range sfu.MaxLayers {
		for _, c := range [2]int{r - d, r + d} {
			if c < 0 || c >= sfu.MaxLayers {
				continue
			}
			if t := p.open(sfu.LayerName(base, c)); t != nil {
				return t
			}
		}
	}
	return nil
}

// onVideo forwards the current source of a programme layer, and switches to the
// pending one at its keyframe.
func (p *prog) onVideo(s *sink, pkt *sfu.Packet) {
	l := &p.video[s.layer]
	switch s {
	case l.cur:
		p.write(l.out, &pkt.Header, pkt.Payload)
	case l.pending:
		if !pkt.KeyframeStart {
			s.track.RequestKeyframe() // coalesced by the track; a lost request is retried
			return
		}
		p.detach(l.cur)
		l.cur, l.pending = s, nil
		// The programme track continues its sequence and timestamps over the new
		// source, and its consumers' keyframe requests now reach that source.
		l.out.SetSource(s.track.RequestKeyframe)
		if s.sprop != nil {
			if sps, _ := sfu.H264ParameterSets(pkt.Payload); sps == nil {
				// The keyframe starts without its parameter sets in band: send the
				// ones the codec line declares first, or decoders cannot start.
				h := pkt.Header
				h.SequenceNumber--
				h.Marker = false
				p.write(l.out, &h, s.sprop)
			}
		}
		p.write(l.out, &pkt.Header, pkt.Payload)
	}
}

// spropSTAPA returns an H.264 codec's sprop-parameter-sets as one STAP-A payload
// (RFC 6184 §5.7.1), nil when the codec is not H.264 or declares none usable.
func spropSTAPA(c sfu.Codec) []byte {
	if c.MimeType != sfu.MimeH264 {
		return nil
	}
	v := c.FmtpParam("sprop-parameter-sets")
	if v == "" {
		return nil
	}
	out := []byte{0}
	nri := byte(0)
	hasSPS := false
	for _, b64 := range strings.Split(v, ",") {
		b64 = strings.TrimSpace(b64)
		nalu, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			if nalu, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
				return nil
			}
		}
		if len(nalu) == 0 || len(nalu) > 0xffff {
			return nil
		}
		if nalu[0]&0x1f == 7 {
			hasSPS = true
		}
		nri = max(nri, nalu[0]&0x60)
		out = append(out, byte(len(nalu)>>8), byte(len(nalu)))
		out = append(out, nalu...)
	}
	if !hasSPS || len(out) > sfu.MaxPayloadSize {
		return nil
	}
	out[0] = nri | 24
	return out
}
