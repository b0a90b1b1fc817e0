package testpeer

import (
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Dropper is an interceptor for a subscriber's chain that drops every 7th
// incoming H.264 packet, once per sequence number, 30 in all: the losses a
// server answers from its track cache when the subscriber NACKs them (use it
// with Options.NoReplayProtection, the retransmissions reuse the numbers).
type Dropper struct {
	interceptor.NoOp
	dropped atomic.Int32
}

// Dropped returns how many packets the dropper has dropped.
func (d *Dropper) Dropped() int32 { return d.dropped.Load() }

// Factory returns a factory that installs d (for Options.Interceptors).
func (d *Dropper) Factory() interceptor.Factory { return dropperFactory{d} }

// BindRemoteStream wraps an H.264 stream's reader; other streams pass untouched.
func (d *Dropper) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeH264) {
		return reader
	}
	seen := map[uint16]bool{}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil || n < 4 {
				return n, attr, err
			}
			seq := uint16(b[2])<<8 | uint16(b[3])
			if seq%7 == 0 && !seen[seq] && d.dropped.Load() < 30 {
				seen[seq] = true
				d.dropped.Add(1)
				continue
			}
			return n, attr, err
		}
	})
}

type dropperFactory struct{ d *Dropper }

func (f dropperFactory) NewInterceptor(string) (interceptor.Interceptor, error) { return f.d, nil }

// Missing counts the sequence numbers never received between the lowest and
// the highest received (no wrap-around: short tests stay within 65536).
func (r *Received) Missing() int {
	_, _, seqs := r.Snapshot()
	got := map[uint16]bool{}
	for _, q := range seqs {
		got[q] = true
	}
	sorted := slices.Sorted(maps.Keys(got))
	n := 0
	for i := 1; i < len(sorted); i++ {
		n += int(sorted[i]-sorted[i-1]) - 1
	}
	return n
}

// MaxGap returns the largest forward step between successive distinct sequence
// numbers in arrival order (1 when none is missing; retransmissions that arrive
// late are skipped, as are steps back).
func MaxGap(seqs []uint16) int {
	gap := 0
	seen := map[uint16]bool{}
	var last uint16
	for i, s := range seqs {
		if seen[s] {
			continue
		}
		seen[s] = true
		if i > 0 {
			if d := int(s - last); d < 0x8000 && d > gap {
				gap = d
			}
		}
		if i == 0 || s-last < 0x8000 {
			last = s
		}
	}
	return gap
}
