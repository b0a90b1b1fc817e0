package rtsp

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/sfu"
)

// The codecs of the trainer's tracks in the tests that write packets by hand.
var (
	testH264 = sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"}
	testOpus = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2}
)

// trainer claims the trainer's publication in the fixture's session.
func (f *fixture) trainer(t testing.TB) *sfu.Lease {
	t.Helper()
	lease, err := f.sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lease
}

// mustTrack adds a track to lease (requestKeyframe may be nil), failing the
// test if it cannot.
func mustTrack(t testing.TB, lease *sfu.Lease, local string, kind sfu.Kind, codec sfu.Codec, requestKeyframe func()) *sfu.Track {
	t.Helper()
	track, err := lease.Track(local, kind, codec, requestKeyframe)
	if err != nil {
		t.Fatal(err)
	}
	return track
}

// trainerVideo claims the trainer's publication and adds its H.264 "video"
// track, whose keyframe requests call requestKeyframe (unless nil).
func (f *fixture) trainerVideo(t testing.TB, requestKeyframe func()) *sfu.Track {
	t.Helper()
	return mustTrack(t, f.trainer(t), "video", sfu.KindVideo, testH264, requestKeyframe)
}

// trainerVideoAudio claims the trainer's publication and adds its H.264
// "video" and Opus "audio" tracks.
func (f *fixture) trainerVideoAudio(t testing.TB) (lease *sfu.Lease, video, audio *sfu.Track) {
	t.Helper()
	lease = f.trainer(t)
	video = mustTrack(t, lease, "video", sfu.KindVideo, testH264, nil)
	audio = mustTrack(t, lease, "audio", sfu.KindAudio, testOpus, nil)
	return lease, video, audio
}

// h264Writer writes numbered packets into an H.264 track, each a whole access
// unit: an IDR slice (every packet a point a reader may start at; callers may
// change pkt.Payload[0]) of a fixed size. Packet i has sequence number
// uint16(i), timestamp i*3000 (30 fps) and i in its payload (see packetTag).
type h264Writer struct {
	t     testing.TB
	track *sfu.Track
	pkt   rtp.Packet
	n     uint32 // the number of the packet next writes
}

func newH264Writer(t testing.TB, track *sfu.Track, size int) *h264Writer {
	payload := make([]byte, size)
	payload[0] = 0x65
	return &h264Writer{t: t, track: track,
		pkt: rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}, Payload: payload}}
}

// write writes packet i; next writes i+1.
func (w *h264Writer) write(i uint32) {
	w.t.Helper()
	w.pkt.SequenceNumber, w.pkt.Timestamp = uint16(i), i*3000
	binary.BigEndian.PutUint32(w.pkt.Payload[1:5], i)
	if err := w.track.WriteRTP(&w.pkt); err != nil {
		w.t.Fatal(err)
	}
	w.n = i + 1
}

// next writes the packet after the last one written (packet 0 first) and
// returns its number.
func (w *h264Writer) next() uint32 {
	w.t.Helper()
	i := w.n
	w.write(i)
	return i
}

// packetTag is the number an h264Writer put in p.
func packetTag(p rtp.Packet) uint32 { return binary.BigEndian.Uint32(p.Payload[1:5]) }

// describe sends DESCRIBE for url, fails the test unless it is answered 200,
// and returns the answer.
func (c *rawClient) describe(url string) *rawResponse {
	c.t.Helper()
	res := c.do("DESCRIBE", url, nil, "")
	if res.status != 200 {
		c.t.Fatalf("DESCRIBE: %d %s", res.status, res.reason)
	}
	return res
}

// play describes url, sets up its first media over TCP (interleaved channels
// 0-1) and plays it; it returns the RTSP session id.
func (c *rawClient) play(url string) string {
	c.t.Helper()
	c.describe(url)
	id := c.setup(url+"/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1", "")
	c.start("PLAY", url, id)
	return id
}

// startReader starts c (a gortsplib reader, closed when the test ends) on the
// fixture's session as the admin, sets up every media and plays; it returns the
// session's description.
func startReader(t *testing.T, f *fixture, c *gortsplib.Client) *description.Session {
	t.Helper()
	u, err := base.ParseURL(f.url(testSession, testAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	return desc
}

// ffprobeStreams runs ffprobe on the session's RTSP URL (over TCP, with a token
// of role) and returns its compact listing of the streams' entries (such as
// "codec_name,width") and its error.
func ffprobeStreams(t *testing.T, f *fixture, role auth.Role, entries string) (string, error) {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	return execOutput(ctx, bin, "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream="+entries,
		"-of", "compact", f.url(testSession, f.token(t, testSession, role)))
}
