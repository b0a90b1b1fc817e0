package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsModes(t *testing.T) {
	env := func(string) string { return "" }
	base := []string{"-admin-token", "x"}
	cfg, err := parseFlags(append(base, "-mode", "adapt"), env)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Simulcast || !cfg.Reports || !cfg.NACK || cfg.Subscribers != 50 || cfg.CapHigh != 3_000_000 || cfg.CapLow != 700_000 {
		t.Errorf("adapt defaults: %+v", cfg)
	}
	if !cfg.RED || !cfg.subOptions().red {
		t.Errorf("subscribers do not offer RED by default: %+v", cfg.subOptions())
	}
	if cfg, err := parseFlags(append(base, "-mode", "adapt", "-red=false"), env); err != nil || cfg.subOptions().red {
		t.Errorf("-red=false: subscriber options %+v, %v", cfg.subOptions(), err)
	}
	cfg, err = parseFlags(append(base, "-mode", "cost", "-subscribers", "80"), env)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Simulcast || !cfg.Reports || !slices.Equal(cfg.Steps, []int{80}) {
		t.Errorf("cost: %+v", cfg)
	}
	if o := cfg.subOptions(); o.link != nil || !o.reports || !o.nack {
		t.Errorf("cost without -cap: subscriber options %+v, want reports and NACKs, no relay", o)
	}
	cfg, err = parseFlags(append(base, "-cap", "600000", "-relay-loss", "0.1", "-relay-delay", "20ms"), env)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.subOptions(); o.link == nil || o.link.RateBps != 600_000 || o.link.Loss != 0.1 || o.link.Delay != 20*time.Millisecond {
		t.Errorf("-cap: subscriber link %+v", o.link)
	}
	for _, bad := range [][]string{
		{"-mode", "fast"},
		{"-mode", "adapt", "-cap-low", "4000000"},
		{"-relay-loss", "1.5"},
		{"-cap", "-1"},
	} {
		if _, err := parseFlags(append(base, bad...), env); err == nil {
			t.Errorf("%q: no error", strings.Join(bad, " "))
		}
	}
}

func TestDistAndFits(t *testing.T) {
	d := newDist([]float64{5, 1, -1, 3, 2, 4, 6, 7, 8, 9, 10})
	if d.N != 10 || d.Missing != 1 || d.P50 != 5 || d.P90 != 9 || d.Max != 10 {
		t.Errorf("dist = %+v", d)
	}
	if d := newDist([]float64{-1}); d.N != 0 || d.Missing != 1 || d.Max != 0 {
		t.Errorf("dist of none = %+v", d)
	}
	for _, c := range []struct {
		layer string
		cap   int64
		want  bool
	}{{"low", 700_000, true}, {"medium", 700_000, false}, {"high", 700_000, false}, {"paused", 700_000, false}, {"high", 3_000_000, true}, {"medium", 1_000_000, true}} {
		if got := fits(c.layer, c.cap); got != c.want {
			t.Errorf("fits(%s, %d) = %v", c.layer, c.cap, got)
		}
	}
}

// The "0 audio lost" target judges the frames lost after RED when every subscriber
// negotiated RED, else the RTP packets lost.
func TestAdaptAudioTarget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		subs    []adaptSub
		value   float64
		met     bool
		byFrame bool
	}{
		{"all RED", []adaptSub{{RED: true, AudioLost: 5, FramesLost: 0}, {RED: true, AudioLost: 3, FramesLost: 0}}, 0, true, true},
		{"all RED, a frame lost", []adaptSub{{RED: true, AudioLost: 5, FramesLost: 1}, {RED: true}}, 1, false, true},
		{"one without RED", []adaptSub{{RED: true, AudioLost: 5}, {AudioLost: 2, FramesLost: 2}}, 5, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &adaptReport{Subscribers: len(tc.subs), Subs: tc.subs}
			r.evaluate()
			audio := r.Targets[2]
			if audio.Value != tc.value || audio.Met != tc.met || strings.Contains(audio.Name, "after RED") != tc.byFrame {
				t.Fatalf("audio target %+v", audio)
			}
			if r.AudioLost.Max != 5 || r.REDNegotiated != map[bool]int{true: 2, false: 1}[tc.byFrame] {
				t.Fatalf("packets lost %+v, RED negotiated %d", r.AudioLost, r.REDNegotiated)
			}
		})
	}
}
