package peer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// simulcastClips returns the three real layers (720p, 360p, 180p; ffmpeg-made,
// cached) of a simulcast publisher.
func simulcastClips(t *testing.T) []*clip.Clip {
	t.Helper()
	var clips []*clip.Clip
	for _, o := range testpeer.SimulcastClipOptions(4 * time.Second) {
		clips = append(clips, testenv.Clip(t, o))
	}
	return clips
}

// startSimulcast connects a simulcast trainer publisher; it is closed when the test
// ends.
func (f *fixture) startSimulcast(t *testing.T, o testpeer.SimulcastOptions) *testpeer.SimulcastPublisher {
	t.Helper()
	pub, err := testpeer.NewSimulcastPublisher(f.ctx, f.publishSignal(sfu.TrainerPublication), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return pub
}

// trainerTracks returns the trainer publication's tracks by name.
func (f *fixture) trainerTracks() map[string]*sfu.Track {
	out := map[string]*sfu.Track{}
	if p, ok := f.sess.Publication(sfu.TrainerPublication); ok {
		for _, tr := range p.Tracks() {
			out[tr.Name()] = tr
		}
	}
	return out
}

// TestSimulcastLayersBecomeTracks: a pion publisher's three simulcast layers (rids
// h, m, l) become the tracks trainer/video, trainer/video~1 and trainer/video~2,
// each carrying its own layer (the bitrates are in the clips' order), beside
// trainer/audio.
func TestSimulcastLayersBecomeTracks(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t)})
	names := []string{"trainer/video", "trainer/video~1", "trainer/video~2", "trainer/audio"}
	testenv.WaitFor(f.ctx, t, "four tracks with packets", func() bool {
		tracks := f.trainerTracks()
		for _, n := range names {
			if tr := tracks[n]; tr == nil || tr.Bytes() < 20_000 && tr.Kind() == sfu.KindVideo || tr.Bytes() == 0 {
				return false
			}
		}
		return true
	})
	tracks := f.trainerTracks()
	if len(tracks) != len(names) {
		t.Fatalf("tracks %v, want %v", keys(tracks), names)
	}
	for rank, n := range names[:3] {
		if got := tracks[n].Layer(); got != rank {
			t.Errorf("%s: layer %d, want %d", n, got, rank)
		}
	}
	// Sample over the same second: the top layer carries the most.
	before := [3]uint64{}
	for i, n := range names[:3] {
		before[i] = tracks[n].Bytes()
	}
	time.Sleep(2 * time.Second)
	var rates [3]uint64
	for i, n := range names[:3] {
		rates[i] = (tracks[n].Bytes() - before[i]) * 8 / 2
	}
	t.Logf("layer bitrates (bit/s): %v", rates)
	if !(rates[0] > rates[1] && rates[1] > rates[2] && rates[2] > 0) {
		t.Fatalf("layer bitrates %v are not best first", rates)
	}
	for _, rid := range testpeer.SimulcastRIDs {
		if p, _ := pub.Sent(rid); p == 0 {
			t.Errorf("layer %s sent nothing", rid)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// frameSizes records the picture size of each SPS a subscriber's video carries.
type frameSizes struct {
	mu    sync.Mutex
	sizes []string
}

// onPacket reads SPS NAL units (single, or in a STAP-A as the clips send them).
func (s *frameSizes) onPacket(kind webrtc.RTPCodecType, p *rtp.Packet) {
	if kind != webrtc.RTPCodecTypeVideo || len(p.Payload) == 0 {
		return
	}
	var nalus [][]byte
	switch p.Payload[0] & 0x1f {
	case 7:
		nalus = [][]byte{p.Payload}
	case 24:
		for b := p.Payload[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n > len(b)-2 {
				break
			}
			nalus = append(nalus, b[2:2+n])
			b = b[2+n:]
		}
	}
	for _, nalu := range nalus {
		if len(nalu) == 0 || nalu[0]&0x1f != 7 {
			continue
		}
		var sps h264.SPS
		if err := sps.Unmarshal(nalu); err != nil {
			continue
		}
		s.mu.Lock()
		s.sizes = append(s.sizes, fmt.Sprintf("%dx%d", sps.Width(), sps.Height()))
		s.mu.Unlock()
	}
}

func (s *frameSizes) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// settlesOn waits for three SPS of size want and checks the subscriber got that
// size from its first or second keyframe on: it may start on the layer whose track
// its downtrack met first (the fast start replays that one's cached keyframe) and
// switch at the wanted layer's next keyframe, but must then stay there.
func (s *frameSizes) settlesOn(ctx context.Context, t *testing.T, want string) []string {
	t.Helper()
	testenv.WaitFor(ctx, t, "three SPS of "+want, func() bool {
		return len(slices.DeleteFunc(s.get(), func(got string) bool { return got != want })) >= 3
	})
	got := s.get()
	first := slices.Index(got, want)
	if first > 1 || slices.ContainsFunc(got[first:], func(s string) bool { return s != want }) {
		t.Fatalf("subscriber got SPS %v, want %s from the first or second keyframe on", got, want)
	}
	return got
}

// sizesSubscriber connects a subscriber to the trainer's layout whose video's SPS
// sizes records; it closes when the test ends.
func (f *fixture) sizesSubscriber(t *testing.T, sizes *frameSizes) *testpeer.Subscriber {
	t.Helper()
	sub, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, f.subscribeSignal(trainerLayout), sizes.onPacket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// waitNew waits for an SPS of size want among those received after the first
// from (a count taken before what should bring it).
func (s *frameSizes) waitNew(ctx context.Context, t *testing.T, from int, want, what string) {
	t.Helper()
	testenv.WaitFor(ctx, t, what, func() bool {
		return slices.Contains(s.get()[from:], want)
	})
}

// waitLayers waits until the trainer's video has the tracks of n layers, each with
// packets.
func (f *fixture) waitLayers(t *testing.T, n int) {
	t.Helper()
	testenv.WaitFor(f.ctx, t, fmt.Sprintf("%d video layers with packets", n), func() bool {
		tracks := f.trainerTracks()
		for rank := range n {
			if tr := tracks[sfu.LayerName("trainer/video", rank)]; tr == nil || tr.Bytes() == 0 {
				return false
			}
		}
		return true
	})
}

// TestSimulcastSubscriberGetsTopLayer: a WHEP subscriber joining a simulcast
// trainer receives the best layer (its keyframes' SPS say 1280x720), and audio.
func TestSimulcastSubscriberGetsTopLayer(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t)})
	// pion reports the layers in the order their first packets come; a classroom
	// joining in between would start on a lower one and switch up at a keyframe.
	f.waitLayers(t, 3)
	var sizes frameSizes
	sub := f.sizesSubscriber(t, &sizes)
	got := sizes.settlesOn(f.ctx, t, "1280x720") // the top layer
	t.Logf("SPS received: %v", got)
	if err := sub.WaitPackets(f.ctx, 1, 50); err != nil {
		t.Fatalf("audio: %v", err)
	}
}

// TestSimulcastSilentLayer: a layer that is negotiated but never sends (here the
// top one) is not waited for: subscribers get the next layer, 640x360; the
// publication still has the tracks of the layers that send.
func TestSimulcastSilentLayer(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t), Silent: []string{"h"}})
	var sizes frameSizes
	f.sizesSubscriber(t, &sizes)
	sizes.settlesOn(f.ctx, t, "640x360") // the best layer that sends
	if p, _ := pub.Sent("h"); p != 0 {
		t.Fatalf("the silent layer sent %d packets", p)
	}
	if tr := f.trainerTracks()["trainer/video"]; tr != nil && tr.Bytes() > 0 {
		t.Fatalf("trainer/video carried %d bytes from a silent layer", tr.Bytes())
	}
}

// chromiumSimulcastOffer is a Chromium WHIP offer with three H.264 simulcast layers
// (rids q, h, f: quarter, half, full), its video section edited by edit (nil: as is).
func chromiumSimulcastOffer(t *testing.T, edit func(video []string) []string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/chromium-simulcast-offer.sdp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\r\n")
	video := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "m=video") })
	if edit != nil {
		lines = append(lines[:video:video], edit(lines[video:])...)
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// replaceLines replaces each line equal to a key by its value (several lines
// when it holds \r\n; none when empty).
func replaceLines(repl map[string]string) func([]string) []string {
	return func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if r, ok := repl[l]; ok {
				if r != "" {
					out = append(out, strings.Split(r, "\r\n")...)
				}
				continue
			}
			out = append(out, l)
		}
		return out
	}
}

// section returns the lines of the media section of an SDP whose m-line starts
// with prefix.
func section(sdp, prefix string) string {
	_, rest, ok := strings.Cut(sdp, "\r\n"+prefix)
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\r\nm="); i >= 0 {
		rest = rest[:i]
	}
	return prefix + rest
}

// TestSimulcastChromiumOfferAnswered: the answer to Chromium's simulcast offer
// negotiates what Chromium requires to send its layers (the mid and rtp-stream-id
// header extensions, a=simulcast:recv with the rids, TWCC for its bandwidth
// estimate, no REMB), and the layers are ranked by their conventional names (f
// best).
func TestSimulcastChromiumOfferAnswered(t *testing.T) {
	offer := chromiumSimulcastOffer(t, nil)
	sections, err := parseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sections[1].simulcast.ranks, map[string]int{"f": 0, "h": 1, "q": 2}; !maps.Equal(got, want) {
		t.Fatalf("ranks %v, want %v", got, want)
	}
	f := newFixture(t, Config{}, time.Second)
	_, answer, err := f.edge.Publish(f.sess, sfu.TrainerPublication, offer)
	if err != nil {
		t.Fatal(err)
	}
	video := section(answer, "m=video")
	for _, want := range []string{
		"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
		"a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
		"a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
		"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
		"a=rid:q recv", "a=rid:h recv", "a=rid:f recv",
		"a=simulcast:recv q;h;f",
		"a=rtcp-fb:108 transport-cc",
	} {
		if !strings.Contains(video, want+"\r\n") {
			t.Errorf("answer's video section lacks %q:\n%s", want, video)
		}
	}
	// Congestion feedback is TWCC alone: Chromium's send-side estimate runs on it
	// (TestBrowserSimulcastStudio sees all three layers sent, limitation "none"); REMB
	// and abs-send-time, for receive-side estimation, are not negotiated.
	for _, unwanted := range []string{"goog-remb", "abs-send-time"} {
		if strings.Contains(answer, unwanted) {
			t.Errorf("answer negotiates %s:\n%s", unwanted, answer)
		}
	}
	if audio := section(answer, "m=audio"); !strings.Contains(audio, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n") {
		t.Errorf("answer's audio section lacks the mid extension:\n%s", audio)
	}
}

// TestSimulcastBadOffers: simulcast offers the edge cannot take are refused with
// ErrBadOffer (WHIP answers 400) and a reason naming the problem.
func TestSimulcastBadOffers(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	for _, tc := range []struct {
		name   string
		repl   map[string]string
		reason string
	}{
		{"four layers", map[string]string{"a=simulcast:send q;h;f": "a=rid:x send\r\na=simulcast:send q;h;f;x"}, "4 simulcast streams, at most 3"},
		{"duplicate rid", map[string]string{"a=rid:f send": "a=rid:f send\r\na=rid:f send max-width=1280"}, `rid "f" declared twice`},
		{"unknown rid", map[string]string{"a=simulcast:send q;h;f": "a=simulcast:send q;h;z"}, `unknown rid "z"`},
		{"rid listed twice", map[string]string{"a=simulcast:send q;h;f": "a=simulcast:send q;h;q"}, `rid "q" listed twice`},
		{"malformed rid", map[string]string{"a=rid:q send": "a=rid:q/x send"}, "malformed rid"},
		{"bad restriction", map[string]string{"a=rid:q send": "a=rid:q send max-width=wide"}, `max-width="wide" is not a positive number`},
		{"every layer another codec", map[string]string{"a=rid:q send": "a=rid:q send pt=96", "a=rid:h send": "a=rid:h send pt=96", "a=rid:f send": "a=rid:f send pt=45"}, "no simulcast stream the edge can take"},
		{"four rid lines", map[string]string{"a=rid:f send": "a=rid:f send\r\na=rid:x send"}, "4 a=rid send lines, at most 3"},
		{"two simulcast lines", map[string]string{"a=simulcast:send q;h;f": "a=simulcast:send q;h;f\r\na=simulcast:send q"}, "2 a=simulcast lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.edge.Publish(f.sess, sfu.TrainerPublication, chromiumSimulcastOffer(t, replaceLines(tc.repl)))
			if !errors.Is(err, ErrBadOffer) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want ErrBadOffer with %q", err, tc.reason)
			}
		})
	}
}

// TestSimulcastLayerOfAnotherCodecIgnored: a rid restricted to VP8 (mixed-codec
// simulcast) is left out of the answer, so the publisher does not send it; the H.264
// layers are taken. A paused rid is answered paused and not ranked.
func TestSimulcastLayerOfAnotherCodecIgnored(t *testing.T) {
	offer := chromiumSimulcastOffer(t, replaceLines(map[string]string{
		"a=rid:q send": "a=rid:q send pt=96", "a=simulcast:send q;h;f": "a=simulcast:send q;~h;f"}))
	sections, err := parseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	sim := sections[1].simulcast
	if !maps.Equal(sim.ranks, map[string]int{"f": 0}) || len(sim.ignored) != 1 || sim.ignored[0].rid != "q" {
		t.Fatalf("ranks %v, ignored %v; want f:0, q ignored", sim.ranks, sim.ignored)
	}
	f := newFixture(t, Config{}, time.Second)
	_, answer, err := f.edge.Publish(f.sess, sfu.TrainerPublication, offer)
	if err != nil {
		t.Fatal(err)
	}
	video := section(answer, "m=video")
	if !strings.Contains(video, "a=simulcast:recv ~h;f\r\n") || strings.Contains(video, "a=rid:q") {
		t.Fatalf("answer should receive ~h;f only:\n%s", video)
	}
}

func TestParseSimulcastRanks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs []string
		want  map[string]int
	}{
		{"no simulcast", nil, nil},
		{"sizes win over names", []string{"rid:h send max-width=320;max-height=180", "rid:m send max-width=1280;max-height=720", "rid:l send max-height=360", "simulcast:send h;m;l"}, map[string]int{"m": 0, "l": 1, "h": 2}},
		{"bitrates", []string{"rid:a send max-br=250000", "rid:b send max-br=2500000", "simulcast:send a;b"}, map[string]int{"b": 0, "a": 1}},
		{"h m l", []string{"rid:l send", "rid:h send", "rid:m send", "simulcast:send l;m;h"}, map[string]int{"h": 0, "m": 1, "l": 2}},
		{"f h q", []string{"rid:q send", "rid:h send", "rid:f send", "simulcast:send q;h;f"}, map[string]int{"f": 0, "h": 1, "q": 2}},
		{"h and l only", []string{"rid:l send", "rid:h send", "simulcast:send l;h"}, map[string]int{"h": 0, "l": 1}},
		{"other names: simulcast order", []string{"rid:1 send", "rid:2 send", "rid:0 send", "simulcast:send 2;0;1"}, map[string]int{"2": 0, "0": 1, "1": 2}},
		{"rids without a=simulcast", []string{"rid:x send", "rid:y send"}, map[string]int{"x": 0, "y": 1}},
		{"a=simulcast with a recv list only", []string{"rid:x send", "rid:y send", "simulcast:recv z"}, map[string]int{"x": 0, "y": 1}},
		{"recv rids ignored", []string{"rid:x recv", "simulcast:recv x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: "video", Formats: []string{"102"}}}
			for _, a := range append([]string{"rtpmap:102 H264/90000", "fmtp:102 packetization-mode=1"}, tc.attrs...) {
				key, value, _ := strings.Cut(a, ":")
				md.Attributes = append(md.Attributes, sdp.Attribute{Key: key, Value: value})
			}
			sim, err := parseSimulcast(md, "1")
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]int
			if sim != nil {
				got = sim.ranks
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("ranks %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSimulcastKeyframeRequestsPerLayer: a subscriber's PLI reaches the publisher
// on the SSRC of the layer it receives (rid h), and the publisher's answer, a
// keyframe of that layer, reaches the subscriber.
func TestSimulcastKeyframeRequestsPerLayer(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t)})
	f.waitLayers(t, 3)
	var sizes frameSizes
	sub := f.sizesSubscriber(t, &sizes)
	sizes.settlesOn(f.ctx, t, "1280x720")
	before := map[string]int64{}
	for _, rid := range testpeer.SimulcastRIDs {
		before[rid] = pub.PLIs(rid)
	}
	_, keys, _ := sub.Track(0).Snapshot()
	// The track coalesces requests (one per keyframe interval at most): ask until
	// one goes through.
	testenv.WaitFor(f.ctx, t, "a PLI on layer h", func() bool {
		if err := sub.SendPLI(0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return pub.PLIs("h") > before["h"]
	})
	testenv.WaitFor(f.ctx, t, "the answering keyframe", func() bool {
		_, k, _ := sub.Track(0).Snapshot()
		return k > keys
	})
	t.Logf("PLIs by layer before %v, after h=%d m=%d l=%d", before, pub.PLIs("h"), pub.PLIs("m"), pub.PLIs("l"))
	if pub.PLIs("m") != before["m"] || pub.PLIs("l") != before["l"] {
		t.Fatalf("PLIs reached the layers the subscriber does not receive: before %v, after m=%d l=%d", before, pub.PLIs("m"), pub.PLIs("l"))
	}
}

// FuzzSimulcastOffer: on any offer, parseOffer does not panic; an accepted
// simulcast section ranks 1 to MaxLayers layers 0..n-1; the offer with its ignored
// rids removed parses to the same ranks with nothing left to ignore.
func FuzzSimulcastOffer(f *testing.F) {
	b, err := os.ReadFile("testdata/chromium-simulcast-offer.sdp")
	if err != nil {
		f.Fatal(err)
	}
	offer := string(b)
	f.Add(offer)
	f.Add(strings.ReplaceAll(offer, "\r\n", "\n"))
	f.Add(strings.Replace(offer, "a=rid:q send", "a=rid:q send pt=96;max-width=320", 1))
	f.Add(strings.Replace(offer, "a=simulcast:send q;h;f", "a=simulcast:send q,h;~f recv x", 1))
	f.Add(strings.Replace(offer, "a=rid:h send", "a=rid:h send max-br=800000;max-height=360", 1))
	f.Fuzz(func(t *testing.T, offer string) {
		sections, err := parseOffer(offer)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("error %v is neither ErrBadOffer nor ErrUnsupportedCodec", err)
			}
			return
		}
		edited := withoutIgnoredRids(offer, sections)
		again, err := parseOffer(edited)
		if err != nil {
			t.Fatalf("the edited offer is refused: %v\n%s", err, edited)
		}
		if len(again) != len(sections) {
			t.Fatalf("%d sections, %d after the edit", len(sections), len(again))
		}
		for i, s := range sections {
			if s.simulcast == nil {
				if again[i].simulcast != nil {
					t.Fatalf("section %d: simulcast after the edit only", i)
				}
				continue
			}
			n := len(s.simulcast.ranks)
			if n < 1 || n > sfu.MaxLayers {
				t.Fatalf("section %d: %d layers", i, n)
			}
			seen := make([]bool, n)
			for _, r := range s.simulcast.ranks {
				if r < 0 || r >= n || seen[r] {
					t.Fatalf("section %d: ranks %v", i, s.simulcast.ranks)
				}
				seen[r] = true
			}
			if a := again[i].simulcast; a == nil || len(a.ignored) != 0 || !maps.Equal(a.ranks, s.simulcast.ranks) {
				t.Fatalf("section %d: ranks %v; after the edit %+v", i, s.simulcast.ranks, a)
			}
		}
	})
}

// TestSimulcastPausedLayerIgnored: a layer the offer marks paused (~l) gets no
// rank; when the publisher sends it anyway, the edge logs and ignores it: the
// publication has the two other layers' tracks only.
func TestSimulcastPausedLayerIgnored(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t), EditOffer: func(offer string) string {
		return strings.Replace(offer, "a=simulcast:send h;m;l", "a=simulcast:send h;m;~l", 1)
	}})
	f.waitLayers(t, 2)
	testenv.WaitFor(f.ctx, t, "the paused layer to have sent a second", func() bool {
		p, _ := pub.Sent("l")
		return p > 60
	})
	tracks := f.trainerTracks()
	if len(tracks) != 3 || tracks["trainer/video~2"] != nil {
		t.Fatalf("tracks %v, want trainer/video, trainer/video~1 and trainer/audio", keys(tracks))
	}
}

// TestSimulcastLayerStops: when the top layer stops (a publisher's uplink drops
// it), its subscribers move to the next layer, and back when it returns.
func TestSimulcastLayerStops(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t)})
	f.waitLayers(t, 3)
	var sizes frameSizes
	f.sizesSubscriber(t, &sizes)
	sizes.settlesOn(f.ctx, t, "1280x720")
	pub.SetLayerActive("h", false)
	n := len(sizes.get())
	sizes.waitNew(f.ctx, t, n, "640x360", "a 640x360 keyframe after the top layer stopped")
	pub.SetLayerActive("h", true)
	n = len(sizes.get())
	sizes.waitNew(f.ctx, t, n, "1280x720", "a 1280x720 keyframe after the top layer returned")
	t.Logf("SPS received: %v", sizes.get())
}

// TestSimulcastPublisherReconnects: a simulcast trainer that drops and comes back
// within the grace period feeds the same tracks; a subscriber that stayed gets the
// top layer of the new connection.
func TestSimulcastPublisherReconnects(t *testing.T) {
	f := newFixture(t, Config{}, 10*time.Second)
	clips := simulcastClips(t)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: clips})
	f.waitLayers(t, 3)
	var sizes frameSizes
	sub := f.sizesSubscriber(t, &sizes)
	sizes.settlesOn(f.ctx, t, "1280x720")
	before := f.trainerTracks()
	pub.Close()
	packets, _, _ := sub.Track(0).Snapshot()
	f.startSimulcast(t, testpeer.SimulcastOptions{Layers: clips})
	testenv.WaitFor(f.ctx, t, "video from the new connection", func() bool {
		p, _, _ := sub.Track(0).Snapshot()
		return p > packets+200
	})
	after := f.trainerTracks()
	for name, tr := range before {
		if after[name] != tr {
			t.Errorf("track %s replaced on reconnection", name)
		}
	}
	n := len(sizes.get())
	sizes.waitNew(f.ctx, t, n, "1280x720", "a 1280x720 keyframe of the new connection")
	t.Logf("SPS received: %v", sizes.get())
}

// TestSimulcastThenSingleLayer: a simulcast trainer that comes back within the
// grace period with one layer (a client that fell back) feeds trainer/video, and
// the lower layers it no longer sends leave the publication: a subscriber on auto
// and one pinned to low both follow the single layer. When the trainer comes back
// with simulcast again, the pinned one returns to the low layer.
func TestSimulcastThenSingleLayer(t *testing.T) {
	f := newFixture(t, Config{}, 10*time.Second)
	clips := simulcastClips(t)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: clips})
	f.waitLayers(t, 3)
	var auto, low frameSizes
	f.sizesSubscriber(t, &auto)
	var pinned *Resource
	pinnedSub, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
		r, ans, err := f.edge.Subscribe(f.sess, trainerLayout, offer)
		pinned = r
		return ans, err
	}, low.onPacket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pinnedSub.Close)
	if err := pinned.SetLayerPin(PinLow); err != nil {
		t.Fatal(err)
	}
	auto.settlesOn(f.ctx, t, "1280x720")
	waitSizes := func(s *frameSizes, from int, size, what string) {
		t.Helper()
		testenv.WaitFor(f.ctx, t, what, func() bool {
			return len(slices.DeleteFunc(s.get()[from:], func(got string) bool { return got != size })) >= 2
		})
	}
	waitSizes(&low, 0, "320x180", "the pinned subscriber's low layer")

	pub.Close()
	single, err := testpeer.NewPublisher(f.ctx, testpeer.Options{}, false, f.publishSignal(sfu.TrainerPublication))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = single.Play(ctx, clips[1], nil) }() // 640x360
	var stopOnce sync.Once
	stopSingle := func() { stopOnce.Do(func() { cancel(); <-done; single.Close() }) }
	t.Cleanup(stopSingle)
	nAuto, nLow := len(auto.get()), len(low.get())
	waitSizes(&auto, nAuto, "640x360", "the single layer's keyframes on auto")
	waitSizes(&low, nLow, "640x360", "the single layer's keyframes pinned to low")
	testenv.WaitFor(f.ctx, t, "the lower layers removed", func() bool { return len(f.trainerTracks()) == 2 })
	if tracks := f.trainerTracks(); tracks["trainer/video"] == nil || tracks["trainer/audio"] == nil {
		t.Fatalf("tracks %v, want trainer/video and trainer/audio", keys(tracks))
	}
	if st := pinned.LayerState(); st.Layer != PinHigh || !slices.Equal(st.Layers, []string{PinHigh}) {
		t.Errorf("pinned subscriber's layer state %+v, want the single layer (high)", st)
	}
	t.Logf("auto SPS: %v; pinned SPS: %v", auto.get(), low.get())

	// Back with simulcast: the pinned subscriber goes back to the low layer.
	stopSingle()
	nAuto, nLow = len(auto.get()), len(low.get())
	f.startSimulcast(t, testpeer.SimulcastOptions{Layers: clips})
	waitSizes(&auto, nAuto, "1280x720", "the top layer again on auto")
	waitSizes(&low, nLow, "320x180", "the low layer again for the pinned subscriber")
	if tracks := f.trainerTracks(); len(tracks) != 4 {
		t.Errorf("tracks %v, want the three layers and audio", keys(tracks))
	}
}
