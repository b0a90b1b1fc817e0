package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/programme"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
	"lectern/storage"
	"lectern/transcode"
)

// testSession is the only session the stack knows.
const testSession = "lecture"

// stack is Lectern's media path in-process on loopback, wired as cmd/lectern wires
// it: the registry's publication.added event attaches the recorder and the
// transcoder (Opus variants of AAC and G.711 audio) to the session (the sfu knows
// neither). Publications are removed as soon
// as their source goes (no reconnect grace), so recordings end with the publisher.
type stack struct {
	reg    *sfu.Registry
	edge   *peer.Edge
	rtsp   *rtsp.Server
	rec    *recorder.Recorder
	tc     *transcode.Transcoder
	store  *storage.Dir
	issuer *auth.Issuer
	// prog makes the session's programme once startProgramme was called (before
	// anything publishes); nil: the stack has none, as before.
	prog *programme.Manager
}

// newStack starts a stack whose parts are stopped, in order, when the test or
// benchmark ends.
func newStack(t testing.TB) *stack {
	t.Helper()
	s := &stack{}
	var err error
	if s.store, err = storage.NewDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.rec, err = recorder.New(ctx, recorder.Config{Store: s.store, SpoolDir: t.TempDir(), Logger: testenv.Logger()})
	if err != nil {
		_ = s.store.Close()
		t.Fatal(err)
	}
	s.tc = transcode.New(transcode.Config{Logger: testenv.Logger()})
	s.reg = sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, OnEvent: s.onEvent, Logger: testenv.Logger()})
	t.Cleanup(func() { s.close(t) })
	if s.edge, err = peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: testenv.Logger()}); err != nil {
		t.Fatal(err)
	}
	if s.issuer, err = auth.NewIssuer(bytes.Repeat([]byte("e"), 32)); err != nil {
		t.Fatal(err)
	}
	s.rtsp, err = rtsp.NewServer(rtsp.Config{Address: "127.0.0.1:0", Sessions: s.session, Tokens: s.issuer, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.rtsp.Start(); err != nil {
		s.rtsp = nil
		t.Fatal(err)
	}
	return s
}

// onEvent is the registry's event hook, as cmd/lectern's: it runs without sfu
// locks held.
func (s *stack) onEvent(session, typ string, _ any) {
	if typ != sfu.EventPublicationAdded {
		return
	}
	if sess, ok := s.reg.Lookup(session); ok {
		s.rec.Attach(sess)
		s.tc.Attach(sess)
		if s.prog != nil {
			s.prog.Attach(sess)
		}
	}
}

// startProgramme makes the stack make testSession's programme, as cmd/lectern
// does: rtsp://…/lecture then reads it, the recorder records it as the main
// recording. Call it before anything publishes; videoMode is the session's
// programme_video ("" for the trainer). The programme stops before the sessions
// close.
func (s *stack) startProgramme(videoMode string) *programme.Manager {
	s.prog = programme.New(programme.Config{Logger: testenv.Logger(), VideoMode: func(string) string { return videoMode }})
	return s.prog
}

// session resolves session ids for the RTSP server: only testSession exists.
func (s *stack) session(id string) (*sfu.Session, error) {
	if id != testSession {
		return nil, fmt.Errorf("session %q: %w", id, rtsp.ErrSessionNotFound)
	}
	return s.reg.Session(id), nil
}

// close stops the edges first (publishers and subscribers go), then the
// sessions, then the recorder, which stores what it still has.
func (s *stack) close(t testing.TB) {
	if s.rtsp != nil {
		_ = s.rtsp.Close()
	}
	if s.edge != nil {
		_ = s.edge.Close()
	}
	if s.prog != nil {
		_ = s.prog.Close()
	}
	s.reg.CloseAll()
	_ = s.tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.rec.Close(ctx); err != nil {
		t.Errorf("recorder close: %v", err)
	}
	_ = s.store.Close()
}

// token mints a token of role for testSession.
func (s *stack) token(t *testing.T, role auth.Role) string {
	t.Helper()
	tok, _, err := s.issuer.Mint(auth.MintRequest{Session: testSession, Role: role, Name: "e2e", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rtspURL is where a publisher with token publishes to testSession. The token goes
// in the query: ffmpeg keeps too few bytes of a URL's password for a signed token.
func (s *stack) rtspURL(token string) string {
	return "rtsp://" + s.rtsp.Addr() + "/" + testSession + "?token=" + token
}

// waitRecording waits until the session's recording is complete and returns it.
func (s *stack) waitRecording(ctx context.Context, t *testing.T) recorder.Meta {
	t.Helper()
	for {
		page, err := s.rec.List(recorder.Query{Session: testSession})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Recordings {
			if m.Status == recorder.StatusComplete {
				return m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no complete recording: %v (recordings: %+v)", ctx.Err(), page.Recordings)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeDownload writes the MP4 download of a recording's main rendition, as the
// replay API streams it, to a file.
func (s *stack) writeDownload(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	d, err := s.rec.Download(ctx, id, recorder.MainRendition)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(d.Header)
	for _, p := range d.Parts {
		rc, _, err := s.store.Open(ctx, p.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(&buf, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if int64(buf.Len()) != d.Size || !d.Complete {
		t.Fatalf("download of %d bytes, announced %d, complete %v", buf.Len(), d.Size, d.Complete)
	}
	path := filepath.Join(t.TempDir(), d.Name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
