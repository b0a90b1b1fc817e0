package sfu

import "testing"

// TestLeaseTrackContinues: a source back within the grace continues its track
// (the same *Track, its sinks kept) when its codec is what they set up, whatever
// else its fmtp says (H.264's parameter sets, Opus's options), and gets a new track
// (the old one ended, its sinks told) when the format differs: AAC with another
// config (mono after stereo: a decoder set up with the old one would play it
// wrong), another channel count, clock rate or MIME type.
func TestLeaseTrackContinues(t *testing.T) {
	aacStereo := Codec{MimeType: MimeAAC, ClockRate: 48000, Channels: 2,
		Fmtp: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190"}
	aacMono := aacStereo
	aacMono.Channels = 1
	aacMono.Fmtp = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188"
	aacStereoUpper := aacStereo
	aacStereoUpper.Fmtp = "mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config=1190; profile-level-id=1"
	opus := Codec{MimeType: MimeOpus, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}
	opusStereo := opus
	opusStereo.Fmtp = "minptime=10;useinbandfec=1;stereo=1"
	h264Other := h264
	h264Other.Fmtp = "packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKzZQHgCJ+XAWoCAgKAAAAMAIAAAB5HjBjLA,aOvjyyLA"
	pcmu := Codec{MimeType: MimePCMU, ClockRate: 8000, Channels: 1}
	pcmuStereo := pcmu
	pcmuStereo.Channels = 2

	for _, tc := range []struct {
		name        string
		kind        Kind
		first, next Codec
		continues   bool
	}{
		{"aac same config", KindAudio, aacStereo, aacStereoUpper, true},
		{"aac other config", KindAudio, aacStereo, aacMono, false},
		{"opus other options", KindAudio, opus, opusStereo, true},
		{"h264 other parameter sets", KindVideo, h264, h264Other, true},
		{"pcmu other channels", KindAudio, pcmu, pcmuStereo, false},
		{"aac to opus", KindAudio, aacStereo, opus, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(t, RegistryConfig{})
			first, err := s.Claim(TrainerPublication, nil)
			if err != nil {
				t.Fatal(err)
			}
			t1, err := first.Track("media", tc.kind, tc.first, nil)
			if err != nil {
				t.Fatal(err)
			}
			sink := &endedSink{}
			t1.AddSink(sink)
			first.Release() // the source went away: the publication waits for it
			next, err := s.Claim(TrainerPublication, nil)
			if err != nil {
				t.Fatal(err)
			}
			t2, err := next.Track("media", tc.kind, tc.next, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := t2 == t1; got != tc.continues {
				t.Fatalf("track continued: %v, want %v", got, tc.continues)
			}
			if sink.ended.Load() == tc.continues {
				t.Fatalf("the old track's sink told it ended: %v, want %v", sink.ended.Load(), !tc.continues)
			}
			if c := t2.Codec(); c.Fmtp != tc.next.Fmtp && !tc.continues {
				t.Fatalf("new track's codec %+v, want %+v", c, tc.next)
			}
			if n := len(next.Publication().Tracks()); n != 1 {
				t.Fatalf("%d tracks in the publication, want 1", n)
			}
		})
	}
}
