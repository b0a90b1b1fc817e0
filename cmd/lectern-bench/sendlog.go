package main

import (
	"sync/atomic"
	"time"
)

// sendLogSize is how many access units the send log remembers: 34 s at 30 fps, far
// more than a subscriber lags.
const sendLogSize = 1024

// sendLog records when the publisher handed each video access unit's first packet
// to pion, by RTP timestamp, for the subscribers to compute forwarding latency. One
// goroutine (the publisher's) writes; any number read. It does not allocate.
type sendLog struct {
	n       atomic.Uint64
	entries [sendLogSize]sendEntry
}

type sendEntry struct {
	ts  atomic.Uint32
	key atomic.Bool
	at  atomic.Int64 // Unix nanoseconds; 0 while being written
}

func newSendLog() *sendLog { return &sendLog{} }

// now returns the current time on the log's clock: the wall clock in Unix
// nanoseconds, the clock of the kernel's receive timestamps.
func (l *sendLog) now() int64 { return time.Now().UnixNano() }

// record notes that the access unit with timestamp ts starts being sent now.
func (l *sendLog) record(ts uint32, key bool) {
	i := l.n.Load()
	e := &l.entries[i%sendLogSize]
	e.at.Store(0)
	e.ts.Store(ts)
	e.key.Store(key)
	e.at.Store(l.now())
	l.n.Store(i + 1)
}

// markKeyframe flags the access unit recorded last as a keyframe.
func (l *sendLog) markKeyframe() {
	if i := l.n.Load(); i > 0 {
		l.entries[(i-1)%sendLogSize].key.Store(true)
	}
}

// sendCursor is one reader's position in the log: readers see access units in
// order, so a lookup usually matches at the cursor.
type sendCursor struct{ next uint64 }

// lookup returns when the access unit with timestamp ts was sent and whether it
// is a keyframe, or false.
func (l *sendLog) lookup(c *sendCursor, ts uint32) (at int64, key, ok bool) {
	head := l.n.Load()
	if head > sendLogSize && c.next < head-sendLogSize {
		c.next = head - sendLogSize
	}
	for i := c.next; i < head; i++ {
		e := &l.entries[i%sendLogSize]
		if e.ts.Load() != ts {
			continue
		}
		at := e.at.Load()
		if at == 0 {
			return 0, false, false
		}
		c.next = i + 1
		return at, e.key.Load(), true
	}
	return 0, false, false
}

// lastKeyframe returns the timestamp of the last keyframe recorded, or false.
func (l *sendLog) lastKeyframe() (uint32, bool) {
	head := l.n.Load()
	for i := head; i > 0 && head-i < sendLogSize; i-- {
		e := &l.entries[(i-1)%sendLogSize]
		if e.key.Load() {
			return e.ts.Load(), true
		}
	}
	return 0, false
}
