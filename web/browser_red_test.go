package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/internal/udprelay"
)

// redPage is a bare WHEP audio player: it offers what Chromium offers for audio
// (red/48000/2 with fmtp 111/111 beside Opus), or with ?red=0 the same without
// red (setCodecPreferences), plays the track, and reports its inbound-rtp stats.
const redPage = `<!doctype html><html><body><audio id="a" autoplay></audio><script>
window.start = async (red) => {
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver('audio', {direction: 'recvonly'});
  if (!red) {
    tr.setCodecPreferences(RTCRtpReceiver.getCapabilities('audio').codecs.filter((c) => c.mimeType.toLowerCase() !== 'audio/red'));
  }
  pc.ontrack = (e) => { document.getElementById('a').srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  const resp = await fetch('/whep', {method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
  if (resp.status !== 201) throw new Error('WHEP ' + resp.status + ' ' + await resp.text());
  await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
  window.pc = pc;
  return true;
};
window.audioStats = async () => {
  const out = {};
  if (!window.pc) return out;
  const all = await window.pc.getStats();
  all.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
    const c = s.codecId && all.get(s.codecId);
    Object.assign(out, {codec: c ? c.mimeType : '', packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0,
      totalSamplesReceived: s.totalSamplesReceived || 0, concealedSamples: s.concealedSamples || 0,
      concealmentEvents: s.concealmentEvents || 0, totalAudioEnergy: s.totalAudioEnergy || 0,
      jitterBufferDelay: s.jitterBufferDelay || 0, jitterBufferEmittedCount: s.jitterBufferEmittedCount || 0});
  });
  return out;
};
</script></body></html>`

// relayPage serves html at / and takes the page's WHIP or WHEP offer as a POST
// to any other path, signalled through signal (e.g. a udprelay's WrapSignal): the
// page and its signalling share an origin, and its media goes through the relay.
// It returns the page's URL.
func relayPage(t *testing.T, html string, signal testpeer.Signal) string {
	t.Helper()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, html)
			return
		}
		offer, _ := io.ReadAll(r.Body)
		answer, err := signal(string(offer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/sdp")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(page.Close)
	return page.URL
}

type browserAudioStats struct {
	Codec                    string
	PacketsReceived          float64
	PacketsLost              float64
	TotalSamplesReceived     float64
	ConcealedSamples         float64
	ConcealmentEvents        float64
	TotalAudioEnergy         float64
	JitterBufferDelay        float64
	JitterBufferEmittedCount float64
}

// TestBrowserAudioREDUnderLoss: two Chromium classrooms hear the trainer (real
// Opus, a 440 Hz tone) over links that lose 10 % of the packets towards them
// (udprelay, same seed). One offers RED as Chromium does and receives it; the
// other takes it out of its offer and receives plain Opus. The classroom with RED
// must conceal (play made-up audio for) a far smaller share of the samples.
func TestBrowserAudioREDUnderLoss(t *testing.T) {
	testClip, err := clip.Generate(context.Background(), filepath.Join(os.TempDir(), "lectern-test-clips"),
		clip.Options{Width: 320, Height: 180, Bitrate: 300_000, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{timeout: 3 * time.Minute})
	id := s.createSession("Lecture")
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, s.token(id, auth.RoleTrainer, "trainer"), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	playing, stop := context.WithCancel(s.ctx)
	played := make(chan error, 1)
	go func() { played <- pub.Play(playing, testClip, nil) }()
	defer func() { stop(); <-played }()

	b := newBrowser(t)
	variants := []struct {
		name string
		red  bool
	}{{"red", true}, {"plain", false}}
	tabs := map[string]*tab{}
	for _, v := range variants {
		relay, err := udprelay.New(udprelay.Config{Down: udprelay.Shape{Loss: 0.10}, Seed: 42})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = relay.Close() })
		page := relayPage(t, redPage, relay.WrapSignal(s.signal("/whep/"+id, s.token(id, auth.RoleSite, "site-"+v.name), nil)))
		tb := b.tab(v.name)
		tb.open(page)
		if err := tb.eval(fmt.Sprintf("window.start(%v)", v.red), nil); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		tabs[v.name] = tb
	}
	stats := func(name string) browserAudioStats {
		t.Helper()
		var st browserAudioStats
		if err := tabs[name].eval("window.audioStats()", &st); err != nil {
			t.Fatalf("%s: stats: %v", name, err)
		}
		return st
	}
	// Two seconds of audio played in both, then a measured 20 s.
	for _, v := range variants {
		tabs[v.name].waitJS("two seconds of audio", "window.audioStats().then((s) => s.totalSamplesReceived > 96000)", 30*time.Second)
	}
	before := map[string]browserAudioStats{"red": stats("red"), "plain": stats("plain")}
	tabs["red"].waitJS("20 s more audio", fmt.Sprintf("window.audioStats().then((s) => s.totalSamplesReceived > %f)", before["red"].TotalSamplesReceived+20*48000), 60*time.Second)
	concealed := map[string]float64{}
	for _, v := range variants {
		a, z := before[v.name], stats(v.name)
		samples := z.TotalSamplesReceived - a.TotalSamplesReceived
		concealed[v.name] = (z.ConcealedSamples - a.ConcealedSamples) / samples
		t.Logf("%s: codec %s, %.0f packets received, %.0f lost (%.1f %%), %.1f %% of %.0f samples concealed in %.0f events, mean jitter buffer %.0f ms, audio energy %.3f",
			v.name, z.Codec, z.PacketsReceived-a.PacketsReceived, z.PacketsLost-a.PacketsLost,
			100*(z.PacketsLost-a.PacketsLost)/(z.PacketsReceived-a.PacketsReceived+z.PacketsLost-a.PacketsLost),
			100*concealed[v.name], samples, z.ConcealmentEvents-a.ConcealmentEvents,
			1000*(z.JitterBufferDelay-a.JitterBufferDelay)/max(1, z.JitterBufferEmittedCount-a.JitterBufferEmittedCount),
			z.TotalAudioEnergy-a.TotalAudioEnergy)
		// Chromium reports the codec inside RED (Opus) for a RED stream: the answer
		// says whether RED was negotiated.
		var answeredRED bool
		if err := tabs[v.name].eval("window.pc.remoteDescription.sdp.includes(' red/48000/2')", &answeredRED); err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(z.Codec, "audio/opus") || answeredRED != v.red {
			t.Errorf("%s: codec %q, RED in the answer %v; want audio/opus, %v", v.name, z.Codec, answeredRED, v.red)
		}
		if z.TotalAudioEnergy-a.TotalAudioEnergy <= 0 {
			t.Errorf("%s: no audio energy: the tone was not decoded", v.name)
		}
	}
	if concealed["plain"] < 0.03 {
		t.Errorf("plain Opus at 10 %% loss concealed only %.1f %% of the samples: is the link lossy?", 100*concealed["plain"])
	}
	if concealed["red"]*3 > concealed["plain"] {
		t.Errorf("RED concealed %.1f %% of the samples, plain Opus %.1f %%: want far less with RED", 100*concealed["red"], 100*concealed["plain"])
	}
}
