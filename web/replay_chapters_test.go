package web

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"lectern/recorder"
)

// TestChapters: the chapter rule of a timeline, case by case.
func TestChapters(t *testing.T) {
	type e = recorder.TimelineEntry
	floor := func(at float64, id, name string) e {
		return e{At: at, Type: recorder.TimelineFloor, Participant: id, Name: name}
	}
	floorEnd := func(at float64, id string) e { return e{At: at, Type: recorder.TimelineFloorEnd, Participant: id} }
	lecture := func(s, end float64) Chapter { return Chapter{Start: s, End: end, Kind: ChapterLecture} }
	question := func(s, end float64, id, name string) Chapter {
		return Chapter{Start: s, End: end, Kind: ChapterQuestion, Participant: id, Name: name}
	}
	slides := func(s, end float64) Chapter { return Chapter{Start: s, End: end, Kind: ChapterSlides} }
	for _, tc := range []struct {
		name     string
		timeline []e
		duration float64
		want     []Chapter
	}{
		{"empty timeline", nil, 100, nil},
		{"hands only", []e{{At: 5, Type: recorder.TimelineHand, Participant: "hue"}, {At: 9, Type: recorder.TimelineHandDown, Participant: "hue"}}, 100, nil},
		{"unknown duration", []e{floor(10, "hue", "Huế")}, 0, nil},
		{"one question", []e{floor(10, "hue", "Huế"), floorEnd(40, "hue")}, 100,
			[]Chapter{lecture(0, 10), question(10, 40, "hue", "Huế"), lecture(40, 100)}},
		{"missing end runs to the end", []e{floor(10, "hue", "Huế")}, 100,
			[]Chapter{lecture(0, 10), question(10, 100, "hue", "Huế")}},
		{"floor at 0 replaces the lecture", []e{floor(0, "hue", "Huế"), floorEnd(20, "hue")}, 30,
			[]Chapter{question(0, 20, "hue", "Huế"), lecture(20, 30)}},
		{"overlapping floors: the last granted, then back", []e{floor(10, "hue", "Huế"), floor(20, "dn", "Đà Nẵng"), floorEnd(30, "dn"), floorEnd(40, "hue")}, 100,
			[]Chapter{lecture(0, 10), question(10, 20, "hue", "Huế"), question(20, 30, "dn", "Đà Nẵng"), question(30, 40, "hue", "Huế"), lecture(40, 100)}},
		{"floor_end of nobody takes every floor back", []e{floor(10, "hue", "Huế"), floor(20, "dn", "Đà Nẵng"), floorEnd(30, "")}, 100,
			[]Chapter{lecture(0, 10), question(10, 20, "hue", "Huế"), question(20, 30, "dn", "Đà Nẵng"), lecture(30, 100)}},
		{"a repeated grant is one chapter", []e{floor(10, "hue", "Huế"), floor(15, "hue", "Huế"), floorEnd(40, "hue")}, 100,
			[]Chapter{lecture(0, 10), question(10, 40, "hue", "Huế"), lecture(40, 100)}},
		{"slides, a question over them, slides again", []e{{At: 5, Type: recorder.TimelineSlides}, floor(10, "hue", "Huế"), floorEnd(20, "hue"), {At: 50, Type: recorder.TimelineSlidesEnd}}, 60,
			[]Chapter{lecture(0, 5), slides(5, 10), question(10, 20, "hue", "Huế"), slides(20, 50), lecture(50, 60)}},
		{"entries past the duration are ignored", []e{floor(10, "hue", "Huế"), floorEnd(120, "hue"), floor(130, "dn", "Đà Nẵng")}, 100,
			[]Chapter{lecture(0, 10), question(10, 100, "hue", "Huế")}},
		{"out of order and negative times", []e{floorEnd(40, "hue"), floor(-3, "hue", "Huế")}, 100,
			[]Chapter{question(0, 40, "hue", "Huế"), lecture(40, 100)}},
		{"a question of no length vanishes", []e{floor(10, "hue", "Huế"), floorEnd(10, "hue"), floor(30, "dn", "Đà Nẵng")}, 100,
			[]Chapter{lecture(0, 30), question(30, 100, "dn", "Đà Nẵng")}},
		{"NaN time ignored", []e{floor(math.NaN(), "hue", "Huế"), floor(10, "dn", "Đà Nẵng")}, 100,
			[]Chapter{lecture(0, 10), question(10, 100, "dn", "Đà Nẵng")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Chapters(tc.timeline, tc.duration); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Chapters =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestChaptersFiles: the WebVTT file, both languages, and the playlists.
func TestChaptersFiles(t *testing.T) {
	ch := Chapters([]recorder.TimelineEntry{{At: 65.5, Type: recorder.TimelineFloor, Participant: "hue", Name: "Huế"},
		{At: 3725.25, Type: recorder.TimelineFloorEnd, Participant: "hue"}}, 4000)
	vi := string(ChaptersVTT(ch, "vi"))
	wantVi := "WEBVTT\n\n1\n00:00:00.000 --> 00:01:05.500\nBài giảng\n\n2\n00:01:05.500 --> 01:02:05.250\nCâu hỏi từ Huế\n\n3\n01:02:05.250 --> 01:06:40.000\nBài giảng\n"
	if vi != wantVi {
		t.Errorf("vi VTT:\n%s\nwant\n%s", vi, wantVi)
	}
	if en := string(ChaptersVTT(ch, "en")); !strings.Contains(en, "\nQuestion from Huế\n") || !strings.Contains(en, "\nLecture\n") {
		t.Errorf("en VTT:\n%s", en)
	}
	if got := string(ChaptersVTT([]Chapter{{End: 1, Kind: ChapterQuestion, Name: "A --> B\n\nC"}}, "vi")); !strings.HasSuffix(got, "\nCâu hỏi từ A → B C\n") {
		t.Errorf("a name that would break the cue: %q", got)
	}
	if got := string(ChaptersVTT([]Chapter{{End: 1, Kind: ChapterQuestion, Name: "<b>Huế</b> & co"}}, "en")); !strings.HasSuffix(got, "\nQuestion from &lt;b&gt;Huế&lt;/b&gt; &amp; co\n") {
		t.Errorf("a name with markup: %q", got)
	}
	pl := string(chaptersPlaylist(4000.4, "en", "?token=x"))
	for _, want := range []string{"#EXT-X-TARGETDURATION:4001\n", "#EXTINF:4000.400,\nchapters-en.vtt?token=x\n#EXT-X-ENDLIST\n"} {
		if !strings.Contains(pl, want) {
			t.Errorf("chapters playlist lacks %q:\n%s", want, pl)
		}
	}
	m := recorder.Meta{Duration: 10, Bytes: 1250000, Codecs: []string{"avc1.42e01f", "opus"},
		Renditions: []recorder.RenditionInfo{{Name: recorder.MainRendition, Tracks: []recorder.TrackInfo{{Kind: "video", Width: 640, Height: 360}}}}}
	master := string(masterPlaylist(m, ch, ""))
	for _, want := range []string{
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="chapters",NAME="Chương",LANGUAGE="vi",DEFAULT=NO,AUTOSELECT=NO,URI="chapters-vi.m3u8"` + "\n",
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="chapters",NAME="Chapters",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=NO,URI="chapters-en.m3u8"` + "\n",
		`#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS="avc1.42e01f,opus",RESOLUTION=640x360,SUBTITLES="chapters"` + "\nindex.m3u8\n",
	} {
		if !strings.Contains(master, want) {
			t.Errorf("master playlist lacks %q:\n%s", want, master)
		}
	}
	if plain := string(masterPlaylist(m, nil, "")); strings.Contains(plain, "SUBTITLES") {
		t.Errorf("master playlist without chapters names subtitles:\n%s", plain)
	}
}
