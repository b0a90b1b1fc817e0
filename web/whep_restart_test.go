package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/sfu/peer"
)

// lfOnly turns an SDP's CRLF line ends into LF, as some clients send them.
func lfOnly(sdp string) string { return strings.ReplaceAll(sdp, "\r\n", "\n") }

// sdpLines splits an SDP or fragment on either line end.
func sdpLines(sdp string) []string {
	return strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n")
}

// restartFragment makes the client's ICE restart fragment (RFC 8840) from its new
// local description: credentials, one media section, candidates, with LF line ends.
func restartFragment(local string) string {
	var b strings.Builder
	var cands []string
	var mline, mid string
	for _, l := range sdpLines(local) {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"), strings.HasPrefix(l, "a=ice-pwd:"):
			if !strings.Contains(b.String(), l[:10]) {
				b.WriteString(l + "\n")
			}
		case strings.HasPrefix(l, "m=") && mline == "":
			mline = l
		case strings.HasPrefix(l, "a=mid:") && mid == "":
			mid = l
		case strings.HasPrefix(l, "a=candidate:"):
			cands = append(cands, l)
		}
	}
	b.WriteString(mline + "\n" + mid + "\n")
	for _, c := range cands {
		b.WriteString(c + "\n")
	}
	b.WriteString("a=end-of-candidates\n")
	return b.String()
}

// offerICERestart makes pc's ICE restart offer its local description (candidates
// gathered) and returns its fragment for the PATCH, and pc's ICE states from now on.
func offerICERestart(t *testing.T, pc *webrtc.PeerConnection) (states <-chan webrtc.ICEConnectionState, frag string) {
	t.Helper()
	ch := make(chan webrtc.ICEConnectionState, 16)
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		select {
		case ch <- st:
		default:
		}
	})
	restart, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(restart); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return ch, restartFragment(pc.LocalDescription().SDP)
}

// applyRestartAnswer gives pc the server's new credentials and candidates from its
// PATCH reply (see restartAnswer).
func applyRestartAnswer(t *testing.T, pc *webrtc.PeerConnection, reply string) {
	t.Helper()
	answer := restartAnswer(pc.RemoteDescription().SDP, reply)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("apply the restart answer: %v", err)
	}
}

// restartAnswer is the client's previous remote description with the server's new
// credentials and candidates from its PATCH reply.
func restartAnswer(prev, reply string) string {
	var ufrag, pwd string
	var cands []string
	for _, l := range sdpLines(reply) {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = l
		case strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = l
		case strings.HasPrefix(l, "a=candidate:"):
			cands = append(cands, l)
		}
	}
	var out []string
	candsDone := false
	for _, l := range sdpLines(prev) {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			out = append(out, ufrag)
		case strings.HasPrefix(l, "a=ice-pwd:"):
			out = append(out, pwd)
		case strings.HasPrefix(l, "a=candidate:"):
			if !candsDone { // the new candidates go in the first section (BUNDLE)
				out = append(out, cands...)
				candsDone = true
			}
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// TestICERestartLFOnly: a real pion player restarts ICE with a fragment whose lines
// end in LF only (and had offered LF-only SDP): the server takes its new credentials,
// answers with its own, and the player reconnects and keeps receiving.
func TestICERestartLFOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lfOffer bool
	}{{"crlf offer", false}, {"lf offer", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, stackOptions{})
			id := s.createSession("Lecture")
			trainer := s.token(id, auth.RoleTrainer, "trainer")
			viewer := s.token(id, auth.RoleViewer, "v")
			pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(s.ctx)
			played := make(chan struct{})
			go func() {
				defer close(played)
				_ = pub.Play(ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 2000), nil)
			}()
			defer func() { cancel(); <-played; pub.Close() }()

			var loc string
			signal := s.signal("/whep/"+id, viewer, &loc)
			sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
				if tc.lfOffer {
					offer = lfOnly(offer)
				}
				return signal(offer)
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := sub.WaitPackets(s.ctx, 1, 20); err != nil {
				t.Fatal(err)
			}
			res, ok := s.edge.Resource(loc[strings.LastIndex(loc, "/")+1:])
			if !ok {
				t.Fatal("no resource at", loc)
			}
			etag := res.ETag()

			states, frag := offerICERestart(t, sub.PC)
			if strings.Contains(frag, "\r") {
				t.Fatal("fragment is not LF-only")
			}
			resp, reply := s.do("PATCH", loc, viewer, "application/trickle-ice-sdpfrag", frag, "If-Match", etag)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag || resp.Header.Get("ETag") == "" {
				t.Fatalf("ICE restart: %d ETag %q → %q: %s", resp.StatusCode, etag, resp.Header.Get("ETag"), reply)
			}
			applyRestartAnswer(t, sub.PC, reply)
			// The player must get through checking to connected on the new credentials.
			deadline := time.After(20 * time.Second)
			var seen []string
			for done := false; !done; {
				select {
				case st := <-states:
					seen = append(seen, st.String())
					done = st == webrtc.ICEConnectionStateConnected && slices.Contains(seen, "checking")
					if st == webrtc.ICEConnectionStateFailed {
						t.Fatalf("ICE failed after the restart: %v", seen)
					}
				case <-deadline:
					t.Fatalf("no reconnection after the ICE restart: states %v", seen)
				}
			}
			before, _, _ := sub.Track(1).Snapshot()
			if err := sub.WaitPackets(s.ctx, 1, before+20); err != nil {
				t.Fatal(fmt.Errorf("audio after the restart: %w", err))
			}
		})
	}
}

// newWHEPViewer starts a stack with a session and a viewer watching it over
// WHEP (a pion subscriber, closed at the end of the test), and returns the
// viewer's token, its WHEP resource's URL and the resource.
func newWHEPViewer(t *testing.T) (*stack, string, string, *testpeer.Subscriber, *peer.Resource) {
	t.Helper()
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	viewer := s.token(id, auth.RoleViewer, "v")
	var loc string
	sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, s.signal("/whep/"+id, viewer, &loc), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	res, ok := s.edge.Resource(loc[strings.LastIndex(loc, "/")+1:])
	if !ok {
		t.Fatalf("no WHEP resource for %s", loc)
	}
	return s, viewer, loc, sub, res
}

// TestPatchRefusesMalformedFragment: a PATCH body that is not a usable sdpfrag gets
// 400 with the reason, and the resource keeps its ICE session (same ETag).
func TestPatchRefusesMalformedFragment(t *testing.T) {
	s, viewer, loc, sub, res := newWHEPViewer(t)
	etag := res.ETag()
	for _, tc := range []struct{ name, body, reason string }{
		{"lone CR line ends", "a=ice-ufrag:zzzz\ra=ice-pwd:0123456789abcdefghijkl\r", "control character"},
		{"short password", "a=ice-ufrag:zzzz\na=ice-pwd:short\n", "ice-pwd"},
		{"bad candidate", "a=candidate:1 1 udp x 127.0.0.1 9 typ host\n", "candidate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do("PATCH", loc, viewer, "application/trickle-ice-sdpfrag", tc.body, "If-Match", etag)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.reason) || !strings.Contains(body, `"status":400`) {
				t.Fatalf("%d %s, want 400 saying %q", resp.StatusCode, body, tc.reason)
			}
		})
	}
	if res.ETag() != etag || sub.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatalf("a refused fragment changed the resource: ETag %q → %q, state %s", etag, res.ETag(), sub.PC.ConnectionState())
	}
}
