package testpeer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"
)

// RelaySubscriber is a WHEP subscriber that may use only TURN relay candidates,
// configured from the answer's Link headers as the pages' whip-whep client is.
type RelaySubscriber struct {
	PC *webrtc.PeerConnection
	// Video is closed at the first video packet received.
	Video   chan struct{}
	once    sync.Once
	readers sync.WaitGroup
}

var linkICE = regexp.MustCompile(`^<([^>]+)>; rel="ice-server"(?:; username="([^"]*)"; credential="([^"]*)")?`)

// ICEServersFromLinks parses the ice-server Link headers of a WHIP/WHEP answer
// (RFC 9725 §4.6), one server per URL.
func ICEServersFromLinks(h http.Header) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, l := range h.Values("Link") {
		if m := linkICE.FindStringSubmatch(l); m != nil {
			out = append(out, webrtc.ICEServer{URLs: []string{m[1]}, Username: m[2], Credential: m[3]})
		}
	}
	return out
}

// NewRelaySubscriber posts a WHEP offer (one video, one audio section) to url
// before gathering (trickle ICE), keeps the TURN servers of the answer's Link
// headers whose URL passes keep, gathers relay candidates only and sends them by
// PATCH. The returned header is the answer's.
func NewRelaySubscriber(ctx context.Context, url, token string, keep func(turnURL string) bool) (*RelaySubscriber, http.Header, error) {
	api, err := NewAPI(Options{})
	if err != nil {
		return nil, nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	if err != nil {
		return nil, nil, err
	}
	s := &RelaySubscriber{PC: pc, Video: make(chan struct{})}
	fail := func(err error) (*RelaySubscriber, http.Header, error) { s.Close(); return nil, nil, err }
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fail(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		s.readers.Add(1)
		defer s.readers.Done()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				s.once.Do(func() { close(s.Video) })
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	resp, answer, err := do(ctx, "POST", url, token, "application/sdp", offer.SDP, "")
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fail(fmt.Errorf("WHEP: %d %s", resp.StatusCode, answer))
	}
	var ice []webrtc.ICEServer
	for _, srv := range ICEServersFromLinks(resp.Header) {
		if strings.HasPrefix(srv.URLs[0], "turn") && keep(srv.URLs[0]) {
			ice = append(ice, srv)
		}
	}
	if len(ice) == 0 {
		return fail(fmt.Errorf("no TURN server kept from the Link headers %q", resp.Header.Values("Link")))
	}
	if err := pc.SetConfiguration(webrtc.Configuration{ICEServers: ice, ICETransportPolicy: webrtc.ICETransportPolicyRelay}); err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	<-gathered
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fail(err)
	}
	var frag strings.Builder
	for _, line := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
		if strings.HasPrefix(line, "a=candidate:") {
			if !strings.Contains(line, "typ relay") {
				return fail(fmt.Errorf("relay-only peer gathered %q", line))
			}
			frag.WriteString(line + "\r\n")
		}
	}
	if frag.Len() == 0 {
		return fail(fmt.Errorf("no relay candidate through %v", ice[0].URLs))
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = url[:strings.Index(url, "/whep/")] + loc
	}
	presp, body, err := do(ctx, "PATCH", loc, token, "application/trickle-ice-sdpfrag", frag.String(), resp.Header.Get("ETag"))
	if err != nil {
		return fail(err)
	}
	if presp.StatusCode != http.StatusNoContent {
		return fail(fmt.Errorf("trickle: %d %s", presp.StatusCode, body))
	}
	return s, resp.Header, nil
}

func do(ctx context.Context, method, url, token, ct, body, ifMatch string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// Close closes the connection and waits for its readers.
func (s *RelaySubscriber) Close() {
	_ = s.PC.Close()
	s.readers.Wait()
}
