package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCreateValidation(t *testing.T) {
	zero := time.Time{}
	farFuture := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		in    NewSession
		field string // "" means valid
	}{
		{"plain", NewSession{Title: "Intro to Go"}, ""},
		{"vietnamese", NewSession{Title: "Bài giảng: Kỹ thuật điện tử — buổi 3"}, ""},
		{"title of 200 runes", NewSession{Title: strings.Repeat("ệ", 200)}, ""},
		{"description with lines and tabs", NewSession{Title: "T", Description: "a\r\nb\n\tc"}, ""},
		{"description of 2000 runes", NewSession{Title: "T", Description: strings.Repeat("ư", 2000)}, ""},
		{"empty title", NewSession{Title: ""}, "title"},
		{"blank title", NewSession{Title: " \t\u00a0\u3000 "}, "title"},
		{"title of 201 runes", NewSession{Title: strings.Repeat("ệ", 201)}, "title"},
		{"title with NUL", NewSession{Title: "a\x00b"}, "title"},
		{"title with bell", NewSession{Title: "a\ab"}, "title"},
		{"title with inner newline", NewSession{Title: "line1\nline2"}, "title"},
		{"title with DEL", NewSession{Title: "a\x7fb"}, "title"},
		{"title with C1 control", NewSession{Title: "a\u0085b"}, "title"},
		{"title with escape", NewSession{Title: "\x1b[31mred"}, "title"},
		{"title not UTF-8", NewSession{Title: "caf\xe9"}, "title"},
		{"description of 2001 runes", NewSession{Title: "T", Description: strings.Repeat("ư", 2001)}, "description"},
		{"description with escape", NewSession{Title: "T", Description: "a\x1bb"}, "description"},
		{"description not UTF-8", NewSession{Title: "T", Description: "\xff"}, "description"},
		{"zero schedule", NewSession{Title: "T", ScheduledAt: &zero}, "scheduled_at"},
		{"schedule past year 9999", NewSession{Title: "T", ScheduledAt: &farFuture}, "scheduled_at"},
		{"programme video trainer", NewSession{Title: "T", ProgrammeVideo: "trainer"}, ""},
		{"programme video speaker", NewSession{Title: "T", ProgrammeVideo: "speaker"}, ""},
		{"programme video unknown", NewSession{Title: "T", ProgrammeVideo: "grid"}, "programme_video"},
		{"programme video in capitals", NewSession{Title: "T", ProgrammeVideo: "Speaker"}, "programme_video"},
		{"programme video not UTF-8", NewSession{Title: "T", ProgrammeVideo: "\xff"}, "programme_video"},
	}
	c := openTemp(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Create(tt.in)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if s.ID == "" || s.CreatedAt.IsZero() {
					t.Fatalf("Create returned %+v without id or creation time", s)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create error = %v, want ErrInvalid", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Create error = %#v, want a ValidationError for %q", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name the field %q", err, tt.field)
			}
		})
	}
}

func TestCreateNormalizes(t *testing.T) {
	c := openTemp(t)
	// "Tiếng Việt" typed with combining marks (NFD): e + U+0302 + U+0301, e + U+0323 + U+0302.
	decomposed := "  Tie\u0302\u0301ng Vie\u0323\u0302t \n"
	at := time.Date(2026, 3, 2, 8, 30, 0, 0, time.FixedZone("ICT", 7*3600))
	s, err := c.Create(NewSession{Title: decomposed, Description: " x\r\ny ", ScheduledAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Tiếng Việt"; s.Title != want {
		t.Errorf("Title = %q, want %q (trimmed, NFC)", s.Title, want)
	}
	if want := "x\ny"; s.Description != want {
		t.Errorf("Description = %q, want %q", s.Description, want)
	}
	if s.ScheduledAt == nil || !s.ScheduledAt.Equal(at) || s.ScheduledAt.Location() != time.UTC {
		t.Errorf("ScheduledAt = %v, want %v in UTC", s.ScheduledAt, at)
	}
	if s.ScheduledAt == &at {
		t.Error("ScheduledAt aliases the caller's time")
	}
}

// TestProgrammeVideo: the setting survives a reopen and an update; "" reads as the
// trainer; an update to an unknown mode changes nothing.
func TestProgrammeVideo(t *testing.T) {
	c := openTemp(t)
	s, err := c.Create(NewSession{Title: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ProgrammeVideo != "" || s.VideoMode() != ProgrammeVideoTrainer {
		t.Fatalf("default: %q, mode %q; want \"\" and trainer", s.ProgrammeVideo, s.VideoMode())
	}
	if _, err := c.Update(s.ID, func(s *Session) error { s.ProgrammeVideo = ProgrammeVideoSpeaker; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(s.ID, func(s *Session) error { s.ProgrammeVideo = "both"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("update to \"both\": %v, want ErrInvalid", err)
	}
	re, err := Open(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := re.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.VideoMode() != ProgrammeVideoSpeaker {
		t.Fatalf("after reopen: mode %q, want speaker", got.VideoMode())
	}
}
