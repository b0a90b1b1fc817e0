package relay

import (
	"encoding/binary"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// latencySink takes the send time out of each packet's payload.
type latencySink struct {
	got  chan int64 // latency of each packet, ns
	last atomic.Uint32
}

func (s *latencySink) WriteRTP(p *sfu.Packet) error {
	if len(p.Payload) >= 16 && p.Payload[0] == 0x41 { // the benchmark's P-frames
		sent := int64(binary.BigEndian.Uint64(p.Payload[8:]))
		select {
		case s.got <- sfu.Nanotime() - sent:
		default:
		}
	}
	return nil
}

// BenchmarkRelayHop measures one relay hop: a packet written to the origin's track
// until it is written to the edge's track (origin queue and sender goroutine, SRTP,
// loopback UDP, the edge's pion receiver and track). One packet in flight at a time:
// ns/op is the hop's latency; p50/p99 are reported too.
//
//	go test -run '^$' -bench BenchmarkRelayHop -benchtime 5000x ./cluster/relay/
func BenchmarkRelayHop(b *testing.B) {
	a, e := newNode(b, "a", nodeOptions{}), newNode(b, "e", nodeOptions{})
	lease, err := a.sess().Claim(sfu.TrainerPublication, nil)
	if err != nil {
		b.Fatal(err)
	}
	h264 := sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	video, err := lease.Track("video", sfu.KindVideo, h264, nil)
	if err != nil {
		b.Fatal(err)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: 7, SequenceNumber: 1, Timestamp: 1000}}
	payload := make([]byte, 1000)
	write := func(first byte) {
		payload[0] = first
		binary.BigEndian.PutUint64(payload[8:], uint64(sfu.Nanotime()))
		pkt.Payload = payload
		pkt.Marker = true
		if err := video.WriteRTP(&pkt); err != nil {
			b.Fatal(err)
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 3000
	}
	write(0x65) // an IDR slice: the track has a keyframe
	if err := e.m.Pull(e.ctx, session, sfu.TrainerPublication, a.srv.URL); err != nil {
		b.Fatal(err)
	}
	p, _ := e.sess().Publication(sfu.TrainerPublication)
	sink := &latencySink{got: make(chan int64, 1)}
	remove := p.Tracks()[0].AddSinkLive(sink)
	defer remove()
	// Warm up: the edge's SRTP streams open on the first packets.
	for range 50 {
		write(0x41)
		select {
		case <-sink.got:
		case <-time.After(2 * time.Second):
		}
	}
	lat := make([]int64, 0, b.N)
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		write(0x41)
		timeout.Reset(2 * time.Second)
		select {
		case d := <-sink.got:
			lat = append(lat, d)
		case <-timeout.C:
			b.Fatal("packet lost on the relay")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}
