package rtsp

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"lectern/sfu"
)

// waitPCMA is the trainer's audio codec here (the programme's is testOpus).
var waitPCMA = sfu.Codec{MimeType: sfu.MimePCMA, ClockRate: 8000, Channels: 1}

// publishFor claims a publication with the given tracks (local name: codec) and
// writes a keyframe tagged tag to its video, if any; it returns the video track.
func publishFor(t *testing.T, f *fixture, name string, tag byte, tracks ...string) *sfu.Track {
	t.Helper()
	l, err := f.sess.Claim(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	var video *sfu.Track
	for _, local := range tracks {
		kind, codec := sfu.KindVideo, testH264
		switch {
		case local == "audio" && name == sfu.TrainerPublication:
			kind, codec = sfu.KindAudio, waitPCMA
		case local == "audio":
			kind, codec = sfu.KindAudio, testOpus
		}
		tr := mustTrack(t, l, local, kind, codec, nil)
		if kind == sfu.KindVideo {
			video = tr
			writeTagged(t, video, tag, 1)
		}
	}
	return video
}

// writeTagged writes keyframe n to video, its payload's second byte tag.
func writeTagged(t *testing.T, video *sfu.Track, tag byte, n uint32) {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true, SequenceNumber: uint16(n), Timestamp: n * 3000},
		Payload: []byte{0x65, tag, 0, 0, 0, 0, 0, 0}}
	if err := video.WriteRTP(&p); err != nil {
		t.Fatal(err)
	}
}

// TestDescribeWaitsForProgramme: on a server that makes programmes, a reader of
// /{session} that DESCRIBEs after the trainer started and before the programme
// has its tracks (it is claimed at the trainer's first track, and gets its video
// and audio as the trainer's come) is answered with the programme once it has
// the video and audio the trainer has, not with the trainer's tracks, and then
// plays the programme.
func TestDescribeWaitsForProgramme(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Programme = true })
	trainerVideo := publishFor(t, f, sfu.TrainerPublication, 'T', "video", "audio")

	u, err := base.ParseURL(f.url(testSession, testAdmin))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, ReadTimeout: 10 * time.Second}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type described struct {
		desc *description.Session
		err  error
	}
	done := make(chan described, 1)
	go func() {
		desc, _, err := c.Describe(u)
		done <- described{desc, err}
	}()
	waitFor(f.ctx, t, "the DESCRIBE waiting for the programme", func() bool { return f.srv.programmeWaits.Load() == 1 })

	// The programme starts with video; its audio comes after (here: the test
	// adds it). The DESCRIBE is answered with both.
	l, err := f.sess.Claim(ProgrammePublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	progVideo := mustTrack(t, l, "video", sfu.KindVideo, testH264, nil)
	writeTagged(t, progVideo, 'P', 1)
	mustTrack(t, l, "audio", sfu.KindAudio, testOpus, nil)
	d := <-done
	if d.err != nil {
		t.Fatalf("DESCRIBE: %v", d.err)
	}
	if len(d.desc.Medias) != 2 || d.desc.Medias[0].Type != description.MediaTypeVideo || d.desc.Medias[1].Type != description.MediaTypeAudio {
		t.Fatalf("DESCRIBE: %d medias, want the programme's video and audio", len(d.desc.Medias))
	}
	if _, ok := d.desc.Medias[1].Formats[0].(*format.Opus); !ok {
		t.Fatalf("DESCRIBE: audio %s, want the programme's Opus (not the trainer's PCMA)", d.desc.Medias[1].Formats[0].Codec())
	}
	if n := f.srv.programmeWaits.Load(); n != 0 {
		t.Fatalf("%d DESCRIBEs still waiting", n)
	}

	// The reader plays the programme's video, not the trainer's.
	if err := c.SetupAll(d.desc.BaseURL, d.desc.Medias); err != nil {
		t.Fatal(err)
	}
	tags := make(chan byte, 64)
	c.OnPacketRTP(d.desc.Medias[0], d.desc.Medias[0].Formats[0], func(p *rtp.Packet) {
		if len(p.Payload) > 1 {
			select {
			case tags <- p.Payload[1]:
			default:
			}
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "the reader playing", func() bool { return f.sess.Subscribers() == 1 })
	writeTagged(t, trainerVideo, 'T', 2)
	writeTagged(t, progVideo, 'P', 2)
	select {
	case tag := <-tags:
		if tag != 'P' {
			t.Fatalf("the reader got a packet tagged %q, want the programme's", tag)
		}
	case <-f.ctx.Done():
		t.Fatal("the reader got no video")
	}
}

// TestDescribeProgrammeBound: the wait for the programme is bounded: one that
// does not start (or a server that makes none, though it says so) leaves a
// DESCRIBE of /{session} the trainer's tracks; one that started with video but
// whose audio does not come, its video alone.
func TestDescribeProgrammeBound(t *testing.T) {
	describe := func(t *testing.T, f *fixture) string {
		t.Helper()
		res := dialRaw(t, f.srv.Addr()).describe(f.url(testSession, testAdmin))
		var medias []string
		for line := range strings.Lines(string(res.body)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=rtpmap:"); ok {
				_, enc, _ := strings.Cut(v, " ")
				medias = append(medias, enc)
			}
		}
		return strings.Join(medias, ",")
	}
	short := func(c *Config) { c.Programme, c.programmeSetup = true, 300*time.Millisecond }

	t.Run("no programme", func(t *testing.T) {
		f := newFixture(t, short)
		publishFor(t, f, sfu.TrainerPublication, 'T', "video", "audio")
		if got := describe(t, f); got != "H264/90000,PCMA/8000" {
			t.Fatalf("DESCRIBE without a programme: %s, want the trainer's H264/90000,PCMA/8000", got)
		}
	})
	t.Run("programme without audio", func(t *testing.T) {
		f := newFixture(t, short)
		publishFor(t, f, sfu.TrainerPublication, 'T', "video", "audio")
		publishFor(t, f, ProgrammePublication, 'P', "video")
		if got := describe(t, f); got != "H264/90000" {
			t.Fatalf("DESCRIBE of a programme without audio: %s, want its video alone", got)
		}
	})
}
