package sfu

import (
	"errors"
	"slices"
	"testing"
)

var pcmu = Codec{MimeType: MimePCMU, ClockRate: 8000, Channels: 1}

// TestDerivedTrack: a track the server feeds joins the publication beside the
// source's, is seen by watchers, leaves the lease alone, and ends with the
// publication or by RemoveDerived.
func TestDerivedTrack(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	var seen []string
	cancel := s.Watch(func(tr *Track) { seen = append(seen, tr.Name()) })
	defer cancel()

	l, _ := s.Claim("cam", nil)
	orig, _ := l.Track("audio", KindAudio, pcmu, nil)
	p, _ := s.Publication("cam")
	v, err := p.DerivedTrack(OpusVariant("audio"), KindAudio, opus)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "cam/audio.opus" || !slices.Equal(seen, []string{"cam/audio", "cam/audio.opus"}) {
		t.Fatalf("variant %q, watchers saw %v", v.Name(), seen)
	}
	if again, _ := p.DerivedTrack(OpusVariant("audio"), KindAudio, opus); again != v || len(p.Tracks()) != 2 {
		t.Fatalf("asking again made another track (%d tracks)", len(p.Tracks()))
	}
	if !l.Current() {
		t.Fatal("the derived track took the publication from its source")
	}
	sink := &derivedSink{}
	v.AddSink(sink)
	writeVideo(t, v, 7, 1, 960, []byte{1}, true)
	if sink.pkts != 1 {
		t.Fatalf("variant forwarded %d packets", sink.pkts)
	}

	p.RemoveDerived(v)
	if !v.Closed() || sink.ended != 1 || slices.Contains(p.Tracks(), v) || orig.Closed() {
		t.Fatalf("after RemoveDerived: closed %v, ended %d, tracks %d, original closed %v", v.Closed(), sink.ended, len(p.Tracks()), orig.Closed())
	}
	v2, _ := p.DerivedTrack(OpusVariant("audio"), KindAudio, opus)
	l.End()
	if !v2.Closed() {
		t.Fatal("the derived track outlived its publication")
	}
	if _, err := p.DerivedTrack("x", KindAudio, opus); !errors.Is(err, ErrNotPublishing) {
		t.Fatalf("derived track of an ended publication: %v", err)
	}
}

type derivedSink struct{ pkts, ended int }

func (e *derivedSink) WriteRTP(*Packet) error { e.pkts++; return nil }
func (e *derivedSink) TrackEnded(*Track)      { e.ended++ }

// TestVariantFollower: an audio consumer follows an Opus original, or the Opus
// variant of an original that is not Opus, whichever order they come in.
func TestVariantFollower(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	q := NewQueue(QueueOptions{Kind: KindAudio})
	f := NewVariantFollower("cam/audio", q, func(t *Track) bool { return t.Codec().MimeType != MimeAAC })
	stop := Follow(s, f)
	defer stop()

	// G.711 plays until its variant comes, then the variant.
	l, _ := s.Claim("cam", nil)
	orig, _ := l.Track("audio", KindAudio, pcmu, nil)
	if f.Track() != orig {
		t.Fatal("the G.711 original was not followed before its variant")
	}
	p, _ := s.Publication("cam")
	v, _ := p.DerivedTrack(OpusVariant("audio"), KindAudio, opus)
	if f.Track() != v || orig.Sinks() != 0 {
		t.Fatalf("following %v, original has %d sinks", f.Track().Name(), orig.Sinks())
	}
	if f.Attach(orig) || f.Track() != v {
		t.Fatal("the original displaced its live variant")
	}

	// The publisher switches to Opus: the original wins.
	opusOrig, _ := l.Track("audio", KindAudio, opus, nil)
	if f.Track() != opusOrig {
		t.Fatal("an Opus original was not preferred")
	}

	// A new publication whose variant is announced before its original.
	l.End()
	l2, _ := s.Claim("cam", nil)
	p2, _ := s.Publication("cam")
	v2, _ := p2.DerivedTrack(OpusVariant("audio"), KindAudio, opus)
	orig2, _ := l2.Track("audio", KindAudio, pcmu, nil)
	if f.Track() != v2 || orig2.Sinks() != 0 {
		t.Fatalf("following %s after variant-then-original", f.Track().Name())
	}

	// AAC, which the consumer refuses, plays only through its variant.
	l2.End()
	l3, _ := s.Claim("cam", nil)
	aac, _ := l3.Track("audio", KindAudio, Codec{MimeType: MimeAAC, ClockRate: 48000, Channels: 2}, nil)
	if f.Track() == aac {
		t.Fatal("AAC taken")
	}
	p3, _ := s.Publication("cam")
	v3, _ := p3.DerivedTrack(OpusVariant("audio"), KindAudio, opus)
	if f.Track() != v3 {
		t.Fatal("the AAC track's variant was not followed")
	}
}
