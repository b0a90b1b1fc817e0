package programme

import (
	"encoding/base64"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// camera writes synthetic H.264 access units to a track: a keyframe when asked
// for one (and every gop frames), one-packet frames otherwise. The last two bytes
// of every payload say which camera and which frame.
type camera struct {
	id       byte
	tracks   []*sfu.Track
	inBand   bool // keyframes carry SPS and PPS in band; else IDR only
	keyReq   atomic.Bool
	frames   int
	seq      uint16
	ts       uint32
	ssrc     uint32
	keyCount int
}

const gop = 50

func (c *camera) requestKeyframe() { c.keyReq.Store(true) }

func (c *camera) frame(t testing.TB) {
	t.Helper()
	key := c.keyReq.Swap(false) || c.frames%gop == 0
	var payloads [][]byte
	tag := []byte{c.id, byte(c.frames)}
	if key {
		c.keyCount++
		if c.inBand {
			payloads = append(payloads, append([]byte{0x67, 0x42, 0x00, 0x1f}, tag...), append([]byte{0x68, 0xce}, tag...))
		}
		payloads = append(payloads, append([]byte{0x65, 0x88}, tag...))
	} else {
		payloads = append(payloads, append([]byte{0x41, 0x9a}, tag...))
	}
	for i, pl := range payloads {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: c.seq, Timestamp: c.ts, SSRC: c.ssrc, Marker: i == len(payloads)-1}, Payload: pl}
		for _, tr := range c.tracks {
			write(t, tr, p)
		}
		c.seq++
	}
	c.ts += 3000
	c.frames++
}

// source says which camera a programme packet came from (0 for the parameter
// sets the programme sent itself) and whether it starts a keyframe.
func source(p rtp.Packet) (id byte, key bool) {
	typ := p.Payload[0] & 0x1f
	if typ == 24 {
		return 0, true
	}
	return p.Payload[len(p.Payload)-2], typ == 7 || typ == 5
}

const testSPS, testPPS = "Z0IAH6aAUAW5AQ==", "aM48gA=="

// TestSpeakerVideo: in speaker mode each programme video layer moves to the floor
// holder's (single-layer) camera at its keyframe, never before, with the
// parameter sets of its codec line first, and back to the trainer when the floor
// is taken back; sequence numbers stay continuous.
func TestSpeakerVideo(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	f.mode.Store(VideoSpeaker)
	tc := &camera{id: 1, inBand: true, ssrc: 0xaaaa}
	tc.tracks = []*sfu.Track{
		f.publish(t, sfu.TrainerPublication, "video", sfu.KindVideo, h264Codec, tc.requestKeyframe),
		f.publish(t, sfu.TrainerPublication, sfu.LayerName("video", 1), sfu.KindVideo, h264Codec, tc.requestKeyframe),
	}
	// Two programme layers from the trainer's two.
	caps := []*capture{newCapture(t, f.programmeTrack(t, "video")), newCapture(t, f.programmeTrack(t, sfu.LayerName("video", 1)))}
	testenv.WaitFor(ctx, t, "the trainer's picture in the programme", func() bool {
		tc.frame(t)
		time.Sleep(5 * time.Millisecond) // pace the camera
		return caps[0].len() > 10 && caps[1].len() > 10
	})

	holderCodec := h264Codec
	holderCodec.Fmtp += ";sprop-parameter-sets=" + testSPS + "," + testPPS
	hc := &camera{id: 2, ssrc: 0xbbbb, frames: 1} // its first frame is not a keyframe
	hc.tracks = []*sfu.Track{f.publish(t, "site-hue", "video", sfu.KindVideo, holderCodec, hc.requestKeyframe)}
	hc.keyReq.Store(false)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's picture in the programme", func() bool {
		tc.frame(t)
		hc.frame(t)
		time.Sleep(5 * time.Millisecond)
		n := 0
		for _, c := range caps {
			for _, p := range c.packets() {
				if id, _ := source(p); id == 2 {
					n++
				}
			}
		}
		return n > 20
	})
	f.m.SetSpeakers(testSession, nil)
	testenv.WaitFor(ctx, t, "the trainer's picture again", func() bool {
		tc.frame(t)
		hc.frame(t)
		time.Sleep(5 * time.Millisecond)
		last := caps[0].packets()
		id, _ := source(last[len(last)-1])
		return id == 1 && hc.tracks[0].Sinks() == 0
	})
	for r, c := range caps {
		pkts := c.packets()
		// The programme: trainer, then (from a keyframe) the holder, then (from a
		// keyframe) the trainer again.
		phase := 0
		for i, p := range pkts {
			if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
				t.Fatalf("layer %d: sequence gap at packet %d", r, i)
			}
			id, key := source(p)
			switch {
			case phase == 0 && id == 1, phase == 1 && id == 2, phase == 2 && id == 1:
			case phase == 0 && id == 0:
				phase = 1
				// The codec line's parameter sets, then the IDR.
				sps, pps := sfu.H264ParameterSets(p.Payload)
				if base64.StdEncoding.EncodeToString(sps) != testSPS || base64.StdEncoding.EncodeToString(pps) != testPPS {
					t.Fatalf("layer %d: the parameter sets sent at the switch are %x %x", r, sps, pps)
				}
				if nid, nkey := source(pkts[i+1]); nid != 2 || !nkey || p.Timestamp != pkts[i+1].Timestamp {
					t.Fatalf("layer %d: the holder's IDR does not follow its parameter sets", r)
				}
			case phase == 1 && id == 1 && key:
				phase = 2
			default:
				t.Fatalf("layer %d packet %d: camera %d (keyframe %v) in phase %d", r, i, id, key, phase)
			}
		}
		if phase != 2 {
			t.Fatalf("layer %d: the programme ended in phase %d", r, phase)
		}
	}
	if n := value(t, f.m.metrics.switches.WithLabelValues(switchVideo)); n != 2 {
		t.Errorf("video switches = %v, want 2", n)
	}
}

// TestTrainerVideoMode: with programme_video "trainer" the programme never shows
// a floor holder.
func TestTrainerVideoMode(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	tc := &camera{id: 1, inBand: true, ssrc: 0xaaaa}
	tc.tracks = []*sfu.Track{f.publish(t, sfu.TrainerPublication, "video", sfu.KindVideo, h264Codec, tc.requestKeyframe)}
	capt := newCapture(t, f.programmeTrack(t, "video"))
	hc := &camera{id: 2, inBand: true, ssrc: 0xbbbb}
	hc.tracks = []*sfu.Track{f.publish(t, "site-hue", "video", sfu.KindVideo, h264Codec, hc.requestKeyframe)}
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the programme's video", func() bool {
		tc.frame(t)
		hc.frame(t)
		time.Sleep(5 * time.Millisecond)
		return capt.len() > 3*gop
	})
	for i, p := range capt.packets() {
		if id, _ := source(p); id != 1 {
			t.Fatalf("programme packet %d is from camera %d", i, id)
		}
	}
	if n := hc.tracks[0].Sinks(); n != 0 {
		t.Errorf("the holder's camera has %d sinks", n)
	}
}
