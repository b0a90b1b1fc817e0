package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/internal/testpeer"
	"lectern/internal/udprelay"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/web"
)

const loopbackAdmin = "bench-loopback-admin-0123456789"

// benchServer serves a Lectern HTTP stack (catalog, registry, WebRTC edge on
// loopback), wired as cmd/lectern wires it, until the test ends; it returns its
// base URL.
func benchServer(t *testing.T) string {
	t.Helper()
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	broker := events.NewBroker(events.Options{Logger: log})
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, OnEvent: broker.Publish, Logger: log})
	edge, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewIssuer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := web.New(web.Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer,
		AdminToken: loopbackAdmin, PublicURL: "http://lectern.test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		broker.Close()
		srv.Close()
		reg.CloseAll()
		_ = edge.Close()
	})
	return srv.URL
}

// TestSubscriberRED: a bench subscriber against a real server negotiates RED as a
// browser does and parses every packet the server's RED encoder makes; on a clean
// link it counts no packet and no frame lost; behind a relay losing 10 % of the
// packets its frames come back from the next packets' redundant blocks (frames
// lost after RED well under packets lost); with -red=false it gets plain Opus,
// where every packet lost is a frame lost.
func TestSubscriberRED(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := benchServer(t)
	api := newAPIClient(base, loopbackAdmin)
	session, err := api.createSession(ctx, "RED loopback")
	if err != nil {
		t.Fatal(err)
	}
	trainer, err := api.mintToken(ctx, session, "trainer", "trainer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := startPublisher(ctx, api, session, trainer, newSendLog())
	if err != nil {
		t.Fatal(err)
	}
	playCtx, stopPlay := context.WithCancel(ctx)
	played := make(chan error, 1)
	go func() { played <- pub.play(playCtx, testpeer.SyntheticClip(2*time.Second, 30, 30, 2000)) }()
	defer func() {
		stopPlay()
		if err := <-played; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("publisher: %v", err)
		}
		pub.close(context.WithoutCancel(ctx), api)
	}()

	for _, tc := range []struct {
		name string
		red  bool
		loss float64
	}{
		{"red clean link", true, 0},
		{"red 10% loss", true, 0.1},
		{"plain opus", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			viewer, err := api.mintToken(ctx, session, "viewer", "viewer", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			o := subOptions{red: tc.red}
			if tc.loss > 0 {
				o.link = &udprelay.Shape{Loss: tc.loss}
			}
			s, err := joinSubscriber(ctx, api, session, viewer, o, &shared{sent: newSendLog()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.close(context.WithoutCancel(ctx), api)
			const want = 250 // 5 s of 20 ms frames
			for s.audio.packets.Load() < want {
				if err := sleep(ctx, 20*time.Millisecond); err != nil {
					t.Fatalf("%d audio packets received: %v", s.audio.packets.Load(), err)
				}
			}
			packets, lost, frames := s.audio.packets.Load(), s.audio.lost.Load(), s.audioFramesLost()
			red, recovered, malformed := s.frames.redPkts.Load(), s.frames.recovered.Load(), s.frames.malformed.Load()
			t.Logf("audio packets %d (RED %d), packets lost %d, frames recovered %d, frames lost after RED %d, malformed %d",
				packets, red, lost, recovered, frames, malformed)
			if s.red.Load() != tc.red {
				t.Fatalf("RED negotiated %v, want %v", s.red.Load(), tc.red)
			}
			if malformed != 0 {
				t.Fatalf("%d of the server's RED payloads did not parse", malformed)
			}
			switch {
			case !tc.red:
				if red != 0 || lost != 0 || frames != 0 {
					t.Fatalf("plain Opus: %d RED packets, %d packets and %d frames lost", red, lost, frames)
				}
			case tc.loss == 0:
				// Every packet is RED (the synthetic frames are small); nothing lost,
				// nothing to recover.
				if red != packets || lost != 0 || frames != 0 || recovered != 0 {
					t.Fatalf("clean link: %d of %d packets RED, %d packets and %d frames lost, %d recovered", red, packets, lost, frames, recovered)
				}
			default:
				// About 25 packets lost; a frame is gone only when its packet and the
				// next two are (about 0.1 % of the frames): nearly every lost packet's
				// frame comes back.
				if lost < 5 || frames != lost-recovered || 4*frames > lost {
					t.Fatalf("at %.0f %% loss: %d packets lost, %d frames recovered, %d frames lost after RED", 100*tc.loss, lost, recovered, frames)
				}
			}
		})
	}
}
