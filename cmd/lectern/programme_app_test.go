package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/catalog"
	"lectern/internal/testpeer"
	"lectern/programme"
	"lectern/recorder"
	"lectern/sfu/rtsp"
)

// TestProgrammeNames: the packages that name the programme's publication and video
// modes without importing package programme agree with it.
func TestProgrammeNames(t *testing.T) {
	if recorder.ProgrammePublication != programme.Publication || rtsp.ProgrammePublication != programme.Publication {
		t.Fatalf("programme publication: recorder %q, rtsp %q, programme %q", recorder.ProgrammePublication, rtsp.ProgrammePublication, programme.Publication)
	}
	if catalog.ProgrammeVideoTrainer != programme.VideoTrainer || catalog.ProgrammeVideoSpeaker != programme.VideoSpeaker {
		t.Fatalf("video modes: catalog %q/%q, programme %q/%q", catalog.ProgrammeVideoTrainer, catalog.ProgrammeVideoSpeaker, programme.VideoTrainer, programme.VideoSpeaker)
	}
}

// TestProgrammeWiring: the app makes a session's programme when its trainer
// publishes (a WHEP viewer of /whep/{session} gets the programme's tracks), reads
// programme_video from the catalogue, and exports the programme's metrics.
func TestProgrammeWiring(t *testing.T) {
	a := testApp(t)
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, body, _ := post(t, base+"/api/sessions", a.adminToken, "application/json", `{"title":"Bài 12","programme_video":"speaker"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var sess catalog.Session
	_ = json.Unmarshal([]byte(body), &sess)
	if got := a.programmeVideo(sess.ID); got != programme.VideoSpeaker {
		t.Fatalf("programme video of %s: %q, want speaker", sess.ID, got)
	}
	if got := a.programmeVideo("nosuchsession"); got != programme.VideoTrainer {
		t.Fatalf("programme video of an unknown session: %q, want trainer", got)
	}

	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, sdpSignal(t, base+"/whip/"+sess.ID, mintToken(t, base, a.adminToken, sess.ID, "trainer")))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer playSynthetic(ctx, pub)()
	var answer string
	signal := sdpSignal(t, base+"/whep/"+sess.ID, mintToken(t, base, a.adminToken, sess.ID, "viewer"))
	sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
		var err error
		answer, err = signal(offer)
		return answer, err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 2 {
		if err := sub.WaitPackets(ctx, i, 30); err != nil {
			t.Fatalf("section %d: %v", i, err)
		}
	}
	if !strings.Contains(answer, " programme-video") || !strings.Contains(answer, " programme-audio") {
		t.Fatalf("the answer of /whep/{session} names no programme tracks:\n%s", answer)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The transcoder's series are vectors, shown once a track is transcoded.
	if !strings.Contains(string(metrics), "lectern_programme_mixing_sessions") || a.transcoder == nil {
		t.Errorf("/metrics has no lectern_programme_mixing_sessions (or no transcoder: %v)", a.transcoder)
	}
}
