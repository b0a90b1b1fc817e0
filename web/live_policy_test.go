package web

import (
	"strings"
	"testing"

	"lectern/auth"
)

// TestWHEPRefusesLearners: WHEP plays live to the roles of auth.LiveWatchRoles,
// the set RTSP reading uses too; a learner (replays only) gets 403 on both
// (issue 9, 10l; the RTSP side is sfu/rtsp TestLearnerCannotPlayLive).
func TestWHEPRefusesLearners(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	offer := "v=0\r\n"
	resp, body := s.do("POST", "/whep/"+id, s.token(id, auth.RoleLearner, "hv1"), "application/sdp", offer)
	if resp.StatusCode != 403 || !strings.Contains(body, "role") {
		t.Fatalf("learner: %d %s", resp.StatusCode, body)
	}
	for _, role := range auth.LiveWatchRoles() {
		if resp, body := s.do("POST", "/whep/"+id, s.token(id, role, "p-"+string(role)), "application/sdp", offer); resp.StatusCode == 403 || resp.StatusCode == 401 {
			t.Fatalf("%s: %d %s", role, resp.StatusCode, body)
		}
	}
}
