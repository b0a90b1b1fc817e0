package recorder

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
)

// checkTimeline fails unless got has the types of want, in order, at times that
// never go back and lie within [0, within] seconds.
func checkTimeline(t *testing.T, got []TimelineEntry, want []string, within float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("timeline %+v, want types %v", got, want)
	}
	last := 0.0
	for i, e := range got {
		if e.Type != want[i] || e.At < last || e.At > within {
			t.Fatalf("timeline entry %d %+v: want type %s at %.3f..%.3f s (timeline %+v)", i, e, want[i], last, within, got)
		}
		last = e.At
	}
}

// storedTimeline reads the timeline of a recording's meta.json in the store.
func storedTimeline(t *testing.T, st Store, m Meta) []TimelineEntry {
	t.Helper()
	var stored Meta
	if err := json.Unmarshal([]byte(readStored(t, st, m.Prefix+metaFile)), &stored); err != nil {
		t.Fatal(err)
	}
	return stored.Timeline
}

// TestTimelineMarks records the trainer's publication while the floor changes and
// the slides (a screen-share track) start: the entries are in the main
// recording's meta.json, in order; those before and after it are dropped.
func TestTimelineMarks(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	const id = "timeline01"
	r, sess, ctx := recordSession(t, store, id, -1, time.Minute, nil)
	r.Mark(id, time.Now(), TimelineEntry{Type: TimelineHand, Participant: "early"}) // no recording yet
	p := newPublisher(t, sess, sfu.TrainerPublication)
	begun := time.Now()
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		switch sec {
		case 4:
			r.Mark(id, time.Now(), TimelineEntry{Type: TimelineHand, Participant: "hue", Name: "Huế"})
			r.Mark("other00001", time.Now(), TimelineEntry{Type: TimelineHand, Participant: "x"}) // another session
		case 6:
			r.Mark(id, time.Now(), TimelineEntry{Type: TimelineFloor, Participant: "hue", Name: "Huế"})
		case 8:
			var err error
			if p.screen, err = p.lease.Track("screen", sfu.KindVideo, h264Codec, nil); err != nil {
				t.Error(err)
			}
		case 12:
			r.Mark(id, time.Now(), TimelineEntry{Type: TimelineFloorEnd, Participant: "hue", Name: "Huế"})
		}
	}})
	p.lease.End()
	m := waitComplete(t, r, 1, 30*time.Second)[0]
	r.Mark(id, time.Now(), TimelineEntry{Type: TimelineHand, Participant: "late"}) // the recording ended
	elapsed := time.Since(begun).Seconds()
	want := []string{TimelineHand, TimelineFloor, TimelineSlides, TimelineFloorEnd, TimelineSlidesEnd}
	checkTimeline(t, m.Timeline, want, elapsed)
	checkTimeline(t, storedTimeline(t, store, m), want, elapsed)
	if e := m.Timeline[0]; e.Participant != "hue" || e.Name != "Huế" || e.At < 0.5 {
		t.Fatalf("the hand: %+v, want hue, Huế, about 1 s in (sec 4 of the clip at 4x)", e)
	}
	if again := storedTimeline(t, store, m); len(again) != len(want) {
		t.Fatalf("a mark after the end changed meta.json: %+v", again)
	}
}

// TestTimelineSurvivesCrash: a recorder dies (as SIGKILL would) after timeline
// entries were marked; the next one finalises the recording from the spool's
// journal with those entries.
func TestTimelineSurvivesCrash(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	spoolDir := t.TempDir()
	r1 := newRecorder(t, store, spoolDir, nil)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
	const id = "timeline02"
	sess := reg.Session(id)
	r1.Attach(sess)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	ctx := t.Context()
	crashed := false
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		switch sec {
		case 4:
			r1.Mark(id, time.Now(), TimelineEntry{Type: TimelineHand, Participant: "hue"})
		case 6:
			r1.Mark(id, time.Now(), TimelineEntry{Type: TimelineFloor, Participant: "hue"})
		case 10:
			r1.crash()
			crashed = true
		}
	}})
	if !crashed {
		t.Fatal("no crash")
	}
	p.lease.End()
	r2 := newRecorder(t, store, spoolDir, nil)
	defer closeRecorder(t, r2)
	m := waitComplete(t, r2, 1, time.Minute)[0]
	if !m.Interrupted {
		t.Fatalf("recovered recording not marked interrupted: %+v", m)
	}
	want := []string{TimelineHand, TimelineFloor}
	checkTimeline(t, m.Timeline, want, 10)
	checkTimeline(t, storedTimeline(t, store, m), want, 10)
}

// TestAddMark keeps a timeline in time order and within its bound, and never
// writes into the array of a list handed out before.
func TestAddMark(t *testing.T) {
	var list []TimelineEntry
	for _, at := range []float64{1, 3, 2, 3, 0} {
		list = addMark(list, TimelineEntry{At: at, Type: TimelineHand})
	}
	shared := list
	list = addMark(list, TimelineEntry{At: 0.5, Type: TimelineFloor})
	var ats []float64
	for _, e := range list {
		ats = append(ats, e.At)
	}
	if want := []float64{0, 0.5, 1, 2, 3, 3}; len(ats) != len(want) || ats[1] != 0.5 || ats[5] != 3 || ats[2] != 1 {
		t.Fatalf("times %v, want %v", ats, want)
	}
	if shared[1].At != 1 {
		t.Fatalf("an insertion changed a list handed out before: %+v", shared)
	}
	for range 2 * maxTimeline {
		list = addMark(list, TimelineEntry{At: 9, Type: TimelineHand})
	}
	if len(list) != maxTimeline {
		t.Fatalf("%d entries, want at most %d", len(list), maxTimeline)
	}
}

// TestTimelineProgramme records a session with both the trainer's publication and
// the programme: the programme's recording is the main one (role "programme", the
// floor and its slides in its timeline); the trainer's is a source, without them.
func TestTimelineProgramme(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	const id = "timeline03"
	r, sess, ctx := recordSession(t, store, id, -1, time.Minute, nil)
	trainer := newPublisher(t, sess, sfu.TrainerPublication)
	prog := newPublisher(t, sess, ProgrammePublication)
	done := make(chan struct{})
	go func() {
		defer close(done)
		trainer.feed(t, ctx, c, feedOptions{speed: 4})
	}()
	prog.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		switch sec {
		case 4:
			r.Mark(id, time.Now(), TimelineEntry{Type: TimelineFloor, Participant: "hue", Name: "Huế"})
		case 6:
			var err error
			if prog.screen, err = prog.lease.Track("screen", sfu.KindVideo, h264Codec, nil); err != nil {
				t.Error(err)
			}
		case 10:
			r.Mark(id, time.Now(), TimelineEntry{Type: TimelineFloorEnd, Participant: "hue", Name: "Huế"})
		}
	}})
	<-done
	prog.lease.End()
	trainer.lease.End()
	recs := waitComplete(t, r, 2, 30*time.Second)
	var main, own Meta
	for _, m := range recs {
		switch m.Publication {
		case ProgrammePublication:
			main = m
		case sfu.TrainerPublication:
			own = m
		}
	}
	if main.Role != RoleProgramme || own.Role != RoleSource {
		t.Fatalf("roles: programme %q, trainer %q; want %q and %q (%+v)", main.Role, own.Role, RoleProgramme, RoleSource, recs)
	}
	want := []string{TimelineFloor, TimelineSlides, TimelineFloorEnd, TimelineSlidesEnd}
	checkTimeline(t, main.Timeline, want, main.Duration+5)
	checkTimeline(t, storedTimeline(t, store, main), want, main.Duration+5)
	if len(own.Timeline) != 0 || len(storedTimeline(t, store, own)) != 0 {
		t.Fatalf("the trainer's own recording has a timeline %+v: it belongs to the programme's", own.Timeline)
	}
	var stored Meta
	if err := json.Unmarshal([]byte(readStored(t, store, own.Prefix+metaFile)), &stored); err != nil || stored.Role != RoleSource {
		t.Fatalf("the trainer's meta.json: role %q (%v), want %q", stored.Role, err, RoleSource)
	}
	page, err := r.List(Query{Lectures: true})
	if err != nil || len(page.Recordings) != 1 || page.Recordings[0].ID != main.ID {
		t.Fatalf("the lectures: %+v (%v), want the programme's recording alone", page.Recordings, err)
	}
	if rel := r.Related(main); len(rel) != 1 || rel[0].ID != own.ID {
		t.Fatalf("the programme's related recordings: %+v, want the trainer's", rel)
	}
	if rel := r.Related(own); len(rel) != 1 || rel[0].ID != main.ID {
		t.Fatalf("the trainer's related recordings: %+v, want the programme's", rel)
	}
}

// TestLectureFilter: a programme recording is a lecture; a source is one unless a
// programme recording of its session overlaps it in time.
func TestLectureFilter(t *testing.T) {
	at := func(min int) time.Time { return time.Date(2026, 12, 7, 9, min, 0, 0, time.UTC) }
	ended := func(min int) *time.Time { e := at(min); return &e }
	all := []Meta{
		{ID: "p1", Session: "s1", Role: RoleProgramme, StartedAt: at(0), EndedAt: ended(50)},
		{ID: "t1", Session: "s1", Role: RoleSource, StartedAt: at(0), EndedAt: ended(50)},
		{ID: "h1", Session: "s1", Role: RoleSource, StartedAt: at(20), EndedAt: ended(25)},
		{ID: "t1late", Session: "s1", Role: RoleSource, StartedAt: at(51), EndedAt: ended(55)}, // after the programme
		{ID: "t2", Session: "s2", StartedAt: at(10), EndedAt: ended(20)},                       // before roles, no programme
		{ID: "p3", Session: "s3", Role: RoleProgramme, StartedAt: at(30)},                      // still recording
		{ID: "t3", Session: "s3", Role: RoleSource, StartedAt: at(29)},
	}
	keep := lectureFilter(all)
	var got []string
	for _, m := range all {
		if keep(m) {
			got = append(got, m.ID)
		}
	}
	if want := "p1,t1late,t2,p3"; strings.Join(got, ",") != want {
		t.Fatalf("lectures %v, want %s", got, want)
	}
}

// TestRoleOrSource: a recording made before roles existed reads as a source.
func TestRoleOrSource(t *testing.T) {
	var m Meta
	if err := json.Unmarshal([]byte(`{"id":"x","publication":"trainer"}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.RoleOrSource() != RoleSource || roleOf(ProgrammePublication) != RoleProgramme || roleOf("site-hue") != RoleSource {
		t.Fatalf("RoleOrSource %q, roleOf(programme) %q, roleOf(site-hue) %q", m.RoleOrSource(), roleOf(ProgrammePublication), roleOf("site-hue"))
	}
}
