package rtsp

import (
	"errors"
	"strings"
	"testing"

	"lectern/sfu"
)

// TestReadPlanProgramme: /{session} reads the programme's video and audio once
// the session has one, the trainer's before; /{session}/trainer is always the
// trainer's own (camera, screen, audio); a lower simulcast layer of the programme
// (programme/video~1) is no track of the plan.
func TestReadPlanProgramme(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	hub := reg.Session(testSession)
	h264 := sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LgH9oBQBbpUgAAAwACAAADAGQeMGVA,aM4yyA=="}
	opus := sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2}
	publish := func(name string, locals ...string) *sfu.Lease {
		t.Helper()
		l, err := hub.Claim(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, local := range locals {
			kind, codec := sfu.KindVideo, h264
			if local == "audio" {
				kind, codec = sfu.KindAudio, opus
			}
			if _, err := l.Track(local, kind, codec, nil); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	plan := func(pub string) string {
		t.Helper()
		p, err := readPlan(hub, target{session: testSession, publication: pub})
		if err != nil {
			return "error: " + err.Error()
		}
		var names []string
		for _, tr := range p {
			names = append(names, tr.name)
		}
		return strings.Join(names, ",")
	}
	if _, err := readPlan(hub, target{session: testSession}); !errors.Is(err, errNotFound) {
		t.Fatalf("an empty session: %v, want errNotFound", err)
	}
	trainer := publish(sfu.TrainerPublication, "video", "screen", "audio")
	defer trainer.End()
	if got := plan(""); got != "trainer/video,trainer/audio" {
		t.Fatalf("/{session} before the programme: %s", got)
	}
	prog := publish(ProgrammePublication, "video", "video~1", "screen", "audio")
	if got := plan(""); got != "programme/video,programme/audio" {
		t.Fatalf("/{session} with the programme: %s", got)
	}
	if got := plan(sfu.TrainerPublication); got != "trainer/video,trainer/screen,trainer/audio" {
		t.Fatalf("/{session}/trainer: %s", got)
	}
	if got := plan(ProgrammePublication); got != "programme/video,programme/screen,programme/audio" {
		t.Fatalf("/{session}/programme: %s", got)
	}
	prog.End()
	if got := plan(""); got != "trainer/video,trainer/audio" {
		t.Fatalf("/{session} after the programme ended: %s", got)
	}
}
