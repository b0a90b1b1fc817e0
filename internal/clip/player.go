package clip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
)

// RTP clock rates: H.264 (RFC 6184 §8.2.1) and Opus (RFC 7587 §4.1).
const (
	videoClockRate = 90000
	audioClockRate = 48000
)

// PlayOptions configure a Player. The zero value of a field selects its default.
type PlayOptions struct {
	// VideoSSRC and AudioSSRC are the SSRCs of the two RTP streams.
	VideoSSRC, AudioSSRC uint32
	// VideoPT is the H.264 payload type. It defaults to 102.
	VideoPT uint8
	// AudioPT is the Opus payload type. It defaults to 111.
	AudioPT uint8
	// MTU is the largest RTP payload in bytes. It defaults to 1200.
	MTU int
	// Loop plays the clip again and again, with continuous sequence numbers
	// and timestamps, until the context is done.
	Loop bool
	// WriteVideo and WriteAudio receive each RTP packet, on the goroutine
	// that runs Play, at the packet's send time. The packet and its payload
	// are reused after the call returns: do not retain or modify them
	// (copy, or Marshal, what you keep). A non-nil error stops Play. A nil
	// func leaves that stream out.
	WriteVideo, WriteAudio func(*rtp.Packet) error
	// OnAccessUnit, if set, is called on the same goroutine after all
	// packets of a video access unit were written, with the sequence number
	// of its first packet, its RTP timestamp, whether it is a keyframe, and
	// the time just before its first packet was written. It is meant for
	// latency measurement.
	OnAccessUnit func(seq uint16, ts uint32, keyframe bool, sentAt time.Time)
}

func (o PlayOptions) withDefaults() PlayOptions {
	if o.VideoPT == 0 {
		o.VideoPT = 102
	}
	if o.AudioPT == 0 {
		o.AudioPT = 111
	}
	if o.MTU == 0 {
		o.MTU = 1200
	}
	return o
}

// Player sends a clip as paced RTP packets. All packets are built once by
// NewPlayer; Run only re-stamps header fields, so it does not allocate per
// packet. A Player is immutable and Run may be called several times, also
// concurrently; each call starts new streams at random sequence numbers and
// timestamps.
type Player struct {
	opts   PlayOptions
	video  []videoEntry
	audio  []audioEntry
	period time.Duration // one pass of the clip
}

type videoEntry struct {
	at       time.Duration // send time within a pass
	ts       uint32        // RTP timestamp offset within a pass
	keyframe bool
	packets  []rtp.Packet
}

type audioEntry struct {
	at     time.Duration
	ts     uint32
	packet rtp.Packet
}

// NewPlayer packetizes c for o. Streams whose Write func is nil are left out.
func NewPlayer(c *Clip, o PlayOptions) (*Player, error) {
	o = o.withDefaults()
	if o.MTU < 64 {
		return nil, fmt.Errorf("clip: MTU %d is below 64 bytes", o.MTU)
	}
	p := &Player{opts: o, period: c.Duration}
	if o.WriteVideo != nil {
		p.video = make([]videoEntry, len(c.Video))
		for i, au := range c.Video {
			p.video[i] = videoEntry{at: au.PTS, ts: ticks(au.PTS, videoClockRate), keyframe: au.Keyframe, packets: au.Packetize(o.MTU)}
		}
	}
	if o.WriteAudio != nil {
		p.audio = make([]audioEntry, len(c.Audio))
		for i, f := range c.Audio {
			p.audio[i] = audioEntry{at: f.PTS, ts: ticks(f.PTS, audioClockRate), packet: rtp.Packet{Header: rtp.Header{Version: 2}, Payload: f.Data}}
		}
	}
	if len(p.video)+len(p.audio) == 0 || p.period <= 0 {
		return nil, fmt.Errorf("%w to play (clip of %v, %d access units, %d Opus frames; Write funcs set: video %v, audio %v)",
			ErrEmptyClip, c.Duration, len(c.Video), len(c.Audio), o.WriteVideo != nil, o.WriteAudio != nil)
	}
	return p, nil
}

// ticks converts d to a clock of rate Hz, rounded to the nearest tick.
func ticks(d time.Duration, rate int64) uint32 {
	return uint32((int64(d)*rate + int64(time.Second)/2) / int64(time.Second))
}

// Play packetizes c and sends it as paced RTP packets; see NewPlayer and
// Player.Run.
func (c *Clip) Play(ctx context.Context, o PlayOptions) error {
	p, err := NewPlayer(c, o)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// streamState is the per-Run state of one RTP stream.
type streamState struct {
	pkt    rtp.Packet
	seq    uint16
	tsBase uint32
	period uint32 // timestamp advance per pass
}

func newStreamState(ssrc uint32, pt uint8, period time.Duration, rate int64) *streamState {
	return &streamState{
		pkt:    rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, PayloadType: pt}},
		seq:    uint16(rand.Uint32()),
		tsBase: rand.Uint32(),
		period: ticks(period, rate),
	}
}

// stamp loads tmpl into the reused packet with the next sequence number and
// timestamp offset ts of pass n.
func (s *streamState) stamp(tmpl *rtp.Packet, pass int, ts uint32) *rtp.Packet {
	ssrc, pt := s.pkt.SSRC, s.pkt.PayloadType
	s.pkt = *tmpl
	s.pkt.SSRC, s.pkt.PayloadType = ssrc, pt
	s.pkt.SequenceNumber = s.seq
	s.pkt.Timestamp = s.tsBase + uint32(pass)*s.period + ts
	s.seq++
	return &s.pkt
}

// Run sends the packets in real time: each access unit and Opus frame at its
// PTS from the start of its pass (all packets of an access unit back to
// back), video on a 90 kHz and audio on a 48 kHz RTP clock. It returns nil
// when the clip ends (without Loop), ctx.Err() when ctx is done, or the
// first error of a Write func. The Write funcs and OnAccessUnit are called on
// the calling goroutine.
func (p *Player) Run(ctx context.Context) error {
	vs := newStreamState(p.opts.VideoSSRC, p.opts.VideoPT, p.period, videoClockRate)
	as := newStreamState(p.opts.AudioSSRC, p.opts.AudioPT, p.period, audioClockRate)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for pass := 0; ; pass++ {
		passStart := start.Add(time.Duration(pass) * p.period)
		vi, ai := 0, 0
		for vi < len(p.video) || ai < len(p.audio) {
			sendVideo := ai >= len(p.audio) || (vi < len(p.video) && p.video[vi].at <= p.audio[ai].at)
			at := passStart
			if sendVideo {
				at = at.Add(p.video[vi].at)
			} else {
				at = at.Add(p.audio[ai].at)
			}
			if err := waitUntil(ctx, timer, at); err != nil {
				return err
			}
			var err error
			if sendVideo {
				err = p.sendAccessUnit(vs, &p.video[vi], pass)
				vi++
			} else {
				e := &p.audio[ai]
				if err = p.opts.WriteAudio(as.stamp(&e.packet, pass, e.ts)); err != nil {
					err = fmt.Errorf("clip: write audio: %w", err)
				}
				ai++
			}
			if err != nil {
				return err
			}
		}
		if !p.opts.Loop {
			return nil
		}
	}
}

// sendAccessUnit writes the packets of one access unit and reports it.
func (p *Player) sendAccessUnit(s *streamState, e *videoEntry, pass int) error {
	firstSeq := s.seq
	sentAt := time.Now()
	var ts uint32
	for i := range e.packets {
		pkt := s.stamp(&e.packets[i], pass, e.ts)
		ts = pkt.Timestamp
		if err := p.opts.WriteVideo(pkt); err != nil {
			return fmt.Errorf("clip: write video: %w", err)
		}
	}
	if p.opts.OnAccessUnit != nil && len(e.packets) > 0 {
		p.opts.OnAccessUnit(firstSeq, ts, e.keyframe, sentAt)
	}
	return nil
}

// waitUntil blocks until t or until ctx is done.
func waitUntil(ctx context.Context, timer *time.Timer, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
