package peer

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// Layout says which session tracks a subscriber's media sections carry, in offer
// order per kind: Video[0] goes to the first video section (the main picture),
// Video[1] to the second, and so on. Sections beyond the lists are answered inactive.
type Layout struct {
	Video []string
	Audio []string
}

// SubscribeOptions are what the HTTP layer adds to a WHEP offer.
type SubscribeOptions struct {
	// Key, when set, names the subscriber's place, e.g. a classroom's picture of
	// one publication: a previous resource with the same key is closed first, so
	// a classroom that reconnects (a reloaded page, a restarted decoder) replaces
	// its old connection instead of waiting for it to time out.
	Key string
	// OnSettled runs once when the connection is up or when the resource ends
	// without having connected: the end of the offer's "still connecting" time.
	// It runs on a pion or the resource's goroutine and must not block. It does
	// not run when SubscribeWith fails.
	OnSettled func()
	// OnClose runs once when the resource has closed. It does not run when
	// SubscribeWith fails.
	OnClose func()
}

// Subscribe is SubscribeWith without options.
func (e *Edge) Subscribe(sess *sfu.Session, layout Layout, offer string) (*Resource, string, error) {
	return e.SubscribeWith(sess, layout, offer, SubscribeOptions{})
}

// SubscribeWith answers a WHEP offer with a connection that plays the tracks of sess
// named by layout, now and whenever they (re)appear. While it connects it holds one
// of the session's places for connecting subscribers (sfu.Session.Reserve); once
// connected it counts against the subscriber limit, or is closed if others filled
// the session meanwhile. It returns the resource and the SDP answer.
func (e *Edge) SubscribeWith(sess *sfu.Session, layout Layout, offer string, opts SubscribeOptions) (*Resource, string, error) {
	sections, err := parseOffer(offer)
	if err != nil {
		return nil, "", err
	}
	if opts.Key != "" {
		e.closeKeyed(opts.Key)
	}
	reservation, err := sess.Reserve()
	if err != nil {
		return nil, "", err
	}
	release := reservation.Release
	routes := &rtcpRoutes{}
	pc, err := e.subscriberAPI(routes).NewPeerConnection(e.pcConfig)
	if err != nil {
		release()
		return nil, "", fmt.Errorf("new peer connection: %w", err)
	}
	r := e.newResource(KindWHEP, sess.ID(), pc, offer)
	r.adapt = newAdapter(r, !e.cfg.DisableAdaptation)
	r.mu.Lock()
	r.key, r.onSettled = opts.Key, opts.OnSettled
	r.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		_ = pc.Close()
		release()
		return nil, "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}

	var downs []*downTrack
	worker := e.egress.assign() // a subscriber's downtracks share one egress worker
	nv, na := 0, 0
	for _, s := range sections {
		var want string
		switch {
		case s.kind == sfu.KindVideo && nv < len(layout.Video):
			want = layout.Video[nv]
			nv++
		case s.kind == sfu.KindAudio && na < len(layout.Audio):
			want = layout.Audio[na]
			na++
		default:
			continue
		}
		dt := newDownTrack(r, worker, s.kind, want, e.queueSize(s.kind), sess.Stats())
		sender, err := pc.AddTrack(dt)
		if err != nil {
			_ = pc.Close()
			release()
			return nil, "", fmt.Errorf("add downtrack %s: %w", want, err)
		}
		dt.sender = sender
		if enc := sender.GetParameters().Encodings; len(enc) > 0 {
			routes.add(uint32(enc[0].SSRC), dt)
		}
		downs = append(downs, dt)
		r.adapt.add(dt)
	}
	ans, err := localAnswer(pc)
	if err != nil {
		_ = pc.Close()
		release()
		return nil, "", err
	}
	if opts.OnClose != nil {
		r.addCloseHook(opts.OnClose)
	}
	r.addCloseHook(release)
	if err := r.start(); err != nil {
		_ = pc.Close()
		release()
		return nil, "", err
	}
	// Tracks are attached once the connection is up, not before: pion binds an
	// answerer's tracks before ICE and DTLS complete and drops what is written until
	// SRTP is ready, and the fast-start burst (the packets since the last keyframe)
	// then goes out at once instead of waiting behind live packets. A receiver opens
	// its SRTP read streams just after its side of the DTLS handshake completes;
	// pion-based receivers (hardware decoders' gateways, the load tool) drop what
	// arrives before, so sending starts a moment later.
	r.goFn(func() {
		select {
		case <-r.connected:
		case <-r.ctx.Done():
			return
		}
		if err := reservation.Confirm(); err != nil {
			r.log.Info("no subscriber place left once connected; closing", "err", err)
			r.cancel()
			return
		}
		select {
		case <-time.After(receiverStartDelay):
		case <-r.ctx.Done():
			return
		}
		var live []sfu.Attacher
		for _, dt := range downs {
			if dt.start() {
				live = append(live, dt.follow)
			} else {
				r.log.Info("downtrack not bound; it stays silent", "track", dt.want)
			}
		}
		r.adapt.begin(sfu.Nanotime())
		stopFollowing := sfu.Follow(sess, live...)
		r.addCloseHook(func() {
			stopFollowing()
			for _, dt := range downs {
				dt.detach()
			}
		})
	})
	r.log.Info("subscribed", "video", layout.Video, "audio", layout.Audio, "downtracks", len(downs))
	return r, ans, nil
}
