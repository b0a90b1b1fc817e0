package peer

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

// TestPublicIPsAnnouncedAsHostCandidates: with PublicIPs set (a cloud VM behind
// 1:1 NAT), the edge's answer offers the public address as a host candidate, in
// place of the private one a client could not reach.
func TestPublicIPsAnnouncedAsHostCandidates(t *testing.T) {
	const public = "203.0.113.7"
	f := newFixture(t, Config{PublicIPs: []string{public}}, time.Second)
	_, offer := testpeer.NewOffer(t, testpeer.Options{}, webrtc.RTPTransceiverDirectionSendonly)
	_, answer, err := f.edge.Publish(f.sess, sfu.TrainerPublication, offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, line := range strings.Split(answer, "\n") {
		if strings.HasPrefix(line, "a=candidate:") && strings.Contains(line, " typ host") {
			hosts = append(hosts, strings.TrimSpace(line))
		}
	}
	if len(hosts) == 0 {
		t.Fatalf("no host candidate in the answer:\n%s", answer)
	}
	for _, c := range hosts {
		if fields := strings.Fields(c); len(fields) < 6 || fields[4] != public {
			t.Fatalf("host candidate %q does not carry the public address %s", c, public)
		}
	}
}
