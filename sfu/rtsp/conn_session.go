package rtsp

import (
	"context"
	"sync"

	"lectern/sfu"
)

// connSession is the RTSP session (RFC 2326 §3) of one connection: a reader's set of
// streams, or a publisher's announced media. Lectern binds it to its connection:
// when the connection ends, so does the session.
type connSession struct {
	c      *serverConn
	id     string
	record bool
	target target
	hub    *sfu.Session

	ctx    context.Context // ends the session's goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Reading (touched by the connection's goroutine only).
	offer       []readTrack
	readers     []*readerStream // by offered track index; nil until SETUP
	playing     bool
	anyUDP      bool
	releaseSub  func()
	cancelWatch func()

	// Publishing (touched by the connection's goroutine only).
	desc      *sdpDesc
	plans     map[int]mediaPlan // forwarded media sections, by index
	skipped   []string          // why the others are not
	setup     map[int]transport // media sections SETUP, by index
	channels  map[byte]*ingestMedia
	media     []*ingestMedia
	udpUnreg  []func()
	lease     *sfu.Lease
	recording bool
	untracked uint64 // interleaved frames on channels nobody set up
}

func newConnSession(c *serverConn, t target, hub *sfu.Session, record bool) *connSession {
	ctx, cancel := context.WithCancel(c.ctx)
	return &connSession{c: c, id: randomHex(8), record: record, target: t, hub: hub, ctx: ctx, cancel: cancel,
		setup: map[int]transport{}, channels: map[byte]*ingestMedia{}}
}

// startReaders runs after the PLAY response: one goroutine per stream, and every
// stream follows its track (now, and the same name's track of a later publication).
func (ss *connSession) startReaders() {
	for _, rs := range ss.readers {
		if rs == nil {
			continue
		}
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			rs.run(ss.ctx)
		}()
	}
	ss.cancelWatch = ss.hub.Watch(func(t *sfu.Track) {
		for _, rs := range ss.readers {
			if rs != nil && rs.want == t.Name() {
				rs.attach(t)
			}
		}
	})
}

// stop ends the session and waits for its goroutines. teardown: the client said so
// (a publisher's publication ends now); otherwise the connection went away (the
// publication pauses for the grace period and the encoder may reconnect).
func (ss *connSession) stop(teardown bool) {
	ss.cancel()
	if ss.cancelWatch != nil {
		ss.cancelWatch()
	}
	for _, rs := range ss.readers {
		if rs != nil {
			rs.detach()
		}
	}
	for _, unreg := range ss.udpUnreg {
		unreg()
	}
	ss.wg.Wait()
	for _, rs := range ss.readers {
		if rs != nil {
			rs.queue.Drain()
		}
	}
	if ss.releaseSub != nil {
		ss.releaseSub()
	}
	if ss.lease != nil {
		if teardown {
			ss.lease.End()
		} else {
			ss.lease.Release()
		}
		ss.c.log.Info("rtsp publisher stopped", "session", ss.target.session, "teardown", teardown, "untracked_frames", ss.untracked)
	}
}
