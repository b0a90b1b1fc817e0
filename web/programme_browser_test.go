package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/recorder"
)

// playTones publishes c over WHIP at /whip/{session} with token (a trainer, or
// a classroom with the floor) until the returned stop, which also ends the WHIP
// resource; the floor taken back may have ended it already.
func playTones(t *testing.T, s *stack, session, token string, c *clip.Clip) (stop func()) {
	t.Helper()
	return playWHIP(t, s, session, token, c, http.StatusOK, http.StatusNotFound)
}

// playWHIP publishes c looped over WHIP (a pion peer) at /whip/{session} with
// token until the returned stop (also a cleanup), which ends the WHIP resource:
// DELETE must answer one of deleted.
func playWHIP(t *testing.T, s *stack, session, token string, c *clip.Clip, deleted ...int) (stop func()) {
	t.Helper()
	var loc string
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+session, token, &loc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	played := make(chan error, 1)
	go func() {
		played <- c.Play(ctx, clip.PlayOptions{Loop: true,
			WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
			WriteAudio: func(p *rtp.Packet) error { return pub.Audio.WriteRTP(p) },
		})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-played; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("playing the clip: %v", err)
		}
		if resp, body := s.do("DELETE", loc, token, "", ""); !slices.Contains(deleted, resp.StatusCode) {
			t.Errorf("WHIP DELETE: %d %s", resp.StatusCode, body)
		}
		pub.Close()
	}
	t.Cleanup(stop)
	return stop
}

// whepPlayerJS is a generic WHEP player (what OBS or a hall's player does):
// one video and one audio section, the answer applied once, the picture in a
// <video>. It notes every picture size it shows, and the tracks it was given.
const whepPlayerJS = `(async () => {
	const pc = new RTCPeerConnection();
	pc.addTransceiver('video', {direction: 'recvonly'});
	pc.addTransceiver('audio', {direction: 'recvonly'});
	const v = document.createElement('video');
	v.muted = true; v.autoplay = true; v.playsInline = true;
	document.body.appendChild(v);
	const w = window.whep = {pc, v, tracks: 0, sizes: []};
	pc.ontrack = e => { w.tracks++; if (e.track.kind === 'video') { w.video = e.track; v.srcObject = new MediaStream([e.track]); } };
	const seen = () => { const s = v.videoWidth + 'x' + v.videoHeight; if (v.videoWidth && w.sizes[w.sizes.length - 1] !== s) w.sizes.push(s); };
	v.addEventListener('resize', seen);
	setInterval(seen, 100);
	await pc.setLocalDescription(await pc.createOffer());
	await new Promise(r => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
	const resp = await fetch(%q, {method: 'POST', headers: {'Content-Type': 'application/sdp', Authorization: 'Bearer ' + %q}, body: pc.localDescription.sdp});
	if (resp.status !== 201) throw new Error('WHEP ' + resp.status + ' ' + await resp.text());
	await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
	w.remote = pc.remoteDescription.sdp;
	return true;
})()`

// TestBrowserProgrammeSpeaker: in a session with programme_video "speaker",
// Chromium playing /whep/{session} as a generic WHEP player shows the trainer's
// camera (testsrc, 320x240), Huế's (SMPTE bars, 640x360) while it holds the
// floor, and the trainer's again after: on the one video track it was given,
// never negotiated again. Then the replay page plays the programme's recording
// (the session's main one): seeking to the chapter "Câu hỏi từ Huế" shows Huế's
// picture, seeking to the lecture after it the trainer's, without an error.
func TestBrowserProgrammeSpeaker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: Chromium, pion peers and a recording for about 30 s")
	}
	trainerClip := testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "testsrc", Width: 320, Height: 240, FPS: 30, GOP: 30, Tone: 440, Duration: 10 * time.Second})
	siteClip := testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "smptebars", Width: 640, Height: 360, FPS: 30, GOP: 30, Tone: 1000, Duration: 10 * time.Second})
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{pages: pages, recorder: true, programme: true, timeout: 5 * time.Minute})
	resp, body := s.do("POST", "/api/sessions", testAdmin, "application/json", `{"title":"Bài giảng có câu hỏi","programme_video":"speaker"}`)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"programme_video":"speaker"`) {
		t.Fatalf("create a session in speaker mode: %d %s", resp.StatusCode, body)
	}
	var sess struct{ ID string }
	_ = json.Unmarshal([]byte(body), &sess)
	id := sess.ID
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	viewer := s.token(id, auth.RoleViewer, "hall")
	resp, body = s.do("POST", "/api/sessions/"+id+"/tokens", testAdmin, "application/json", `{"role":"site","name":"hue","display":"Huế","ttl":"1h"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint the classroom's token: %d %s", resp.StatusCode, body)
	}
	var site mintResponse
	_ = json.Unmarshal([]byte(body), &site)

	stopTrainer := playTones(t, s, id, trainer, trainerClip)
	b := newBrowser(t)
	hall := b.tab("programme-whep")
	hall.open(s.url + "/healthz") // a page of the server's origin to run the player in
	if err := hall.eval(fmt.Sprintf(whepPlayerJS, "/whep/"+id, viewer), nil); err != nil {
		hall.fail("WHEP player: %v", err)
	}
	picture := func(what, size string) {
		t.Helper()
		w, h, _ := strings.Cut(size, "x")
		hall.waitJS(what, fmt.Sprintf(`whep.v.videoWidth === %s && whep.v.videoHeight === %s && whep.pc.connectionState === 'connected'`, w, h), 20*time.Second)
	}
	picture("the trainer's picture", "320x240")

	for _, c := range []struct{ method, path, token string }{
		{"POST", "/api/sessions/" + id + "/hands", site.Token},
		{"PUT", "/api/sessions/" + id + "/speakers/hue", trainer},
	} {
		if resp, body := s.do(c.method, c.path, c.token, "", ""); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	stopSite := playTones(t, s, id, site.Token, siteClip)
	picture("Huế's picture", "640x360")
	hall.screenshot("programme-speaker-hue")
	time.Sleep(2 * time.Second) // a question of some length, for the replay's chapter
	if resp, body := s.do("DELETE", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("take the floor back: %d %s", resp.StatusCode, body)
	}
	stopSite()
	picture("the trainer's picture again", "320x240")
	var live struct {
		Tracks    int
		Sizes     []string
		Signaling string
		Same      bool
		Video     string
	}
	if err := hall.eval(`({tracks: whep.tracks, sizes: whep.sizes, signaling: whep.pc.signalingState,
		same: whep.pc.remoteDescription.sdp === whep.remote, video: whep.video.readyState})`, &live); err != nil {
		hall.fail("player state: %v", err)
	}
	t.Logf("the WHEP player: %+v", live)
	if live.Tracks != 2 || live.Signaling != "stable" || !live.Same || live.Video != "live" ||
		strings.Join(live.Sizes, " ") != "320x240 640x360 320x240" {
		t.Errorf("the WHEP player: %+v; want two tracks, the one negotiation, pictures 320x240, 640x360, 320x240", live)
	}
	hall.noConsoleErrors("404 (Not Found)") // the page asks for a favicon
	hall.close()

	// The replay: the lecture's main recording is the programme's.
	time.Sleep(2 * time.Second) // the lecture after the question, for its chapter
	stopTrainer()
	var rec recordingSummary
	eventually(t, "the programme's recording complete", 60*time.Second, func() bool {
		var page recordingPage
		apiGet(t, s, "/api/recordings?session="+id, &page)
		if len(page.Recordings) != 1 {
			return false
		}
		rec = page.Recordings[0]
		return rec.Status == recorder.StatusComplete
	})
	var v recordingView
	apiGet(t, s, "/api/recordings/"+rec.ID, &v)
	if rec.Publication != recorder.ProgrammePublication || len(v.Chapters) != 3 || v.Chapters[1].Kind != ChapterQuestion {
		t.Fatalf("the session's recording %+v, chapters %+v: want the programme's, with Huế's question", rec, v.Chapters)
	}
	q, after := v.Chapters[1], v.Chapters[2]
	player := b.tab("programme-replay")
	player.open(s.url + "/replays/" + rec.ID + "?token=" + learner)
	player.waitJS("player ready", `!!(window.lectern && window.lectern.player) && document.getElementById('video').readyState >= 1`, 30*time.Second)
	player.waitJS("chapters listed", `document.querySelectorAll('#chapter-list button.chapter').length === 3`, 10*time.Second)
	seek := func(chapter int, c Chapter, size string) {
		t.Helper()
		w, h, _ := strings.Cut(size, "x")
		player.click(fmt.Sprintf(`#chapter-list button[data-chapter="%d"]`, chapter))
		// A moment into the chapter: the first picture after a switch is a keyframe
		// that may come up to a second after the chapter's start.
		if err := player.eval(fmt.Sprintf(`(() => { const v = document.getElementById('video'); v.pause(); v.currentTime = %f; return true })()`, c.Start+1.2), nil); err != nil {
			player.fail("seek: %v", err)
		}
		want := fmt.Sprintf(`!v.seeking && v.readyState >= 2 && v.videoWidth === %s && v.videoHeight === %s && v.currentTime >= %f && v.currentTime < %f`, w, h, c.Start, c.End)
		var state struct {
			OK              bool
			Width, Height   int
			Time            float64
			ReadyState      int
			Seeking         bool
			Error, Buffered string
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			if err := player.eval(`(() => { const v = document.getElementById('video'); const b = [];
				for (let i = 0; i < v.buffered.length; i++) b.push(v.buffered.start(i).toFixed(2) + '-' + v.buffered.end(i).toFixed(2));
				return {ok: `+want+`, width: v.videoWidth, height: v.videoHeight, time: v.currentTime, readyState: v.readyState,
					seeking: v.seeking, error: v.error ? v.error.code + ' ' + v.error.message : '', buffered: b.join(' ')} })()`, &state); err != nil {
				player.fail("player state: %v", err)
			}
			if state.OK {
				break
			}
			if time.Now().After(deadline) {
				player.screenshot(fmt.Sprintf("failed-programme-replay-chapter-%d", chapter))
				t.Errorf("replay: chapter %d (%.2f-%.2f s) should show %s: the player is at %+v", chapter, c.Start, c.End, size, state)
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	seek(1, q, "640x360")
	player.screenshot("programme-replay-question")
	seek(2, after, "320x240")
	player.noPlaybackError()
	player.noConsoleErrors()
}
