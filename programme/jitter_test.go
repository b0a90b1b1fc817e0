package programme

import "testing"

// TestJitterBuffer: playback starts at the target, a buffer that overflows loses
// its oldest samples, one that runs dry gives silence until the target again.
func TestJitterBuffer(t *testing.T) {
	var b jitterBuffer
	frame := func(v int16) []int16 {
		f := make([]int16, tickFrame*channels)
		for i := range f {
			f[i] = v
		}
		return f
	}
	take := func() []int32 {
		mix := make([]int32, tickFrame*channels)
		b.addTo(mix)
		return mix
	}
	b.write(frame(1))
	if m := take(); m[0] != 0 {
		t.Fatal("played before the 40 ms target")
	}
	b.write(frame(2))
	if m := take(); m[0] != 1 || m[len(m)-1] != 1 {
		t.Fatalf("first frame: %d..%d, want 1", m[0], m[len(m)-1])
	}
	if m := take(); m[0] != 2 {
		t.Fatalf("second frame: %d, want 2", m[0])
	}
	// Dry: silence, then nothing until 40 ms are buffered again.
	if m := take(); m[0] != 0 || b.primed {
		t.Fatal("an empty buffer did not underrun to silence")
	}
	b.write(frame(3))
	if m := take(); m[0] != 0 {
		t.Fatal("played after an underrun before the target")
	}
	// Overflow: eight 20 ms frames into 120 ms keep the last six.
	for v := int16(4); v < 12; v++ {
		b.write(frame(v))
	}
	if b.n != jitterCap {
		t.Fatalf("%d samples held, want the cap %d", b.n, jitterCap)
	}
	if m := take(); m[0] != 6 {
		t.Fatalf("after the overflow the oldest frame is %d, want 6", m[0])
	}
	// A partial frame: what there is, then silence.
	b = jitterBuffer{}
	b.write(frame(5))
	b.write(frame(5))
	b.write(frame(5)[:tickFrame*channels/2])
	take()
	take()
	m := take()
	if m[0] != 5 || m[len(m)-1] != 0 || b.primed {
		t.Fatalf("partial frame: %d..%d", m[0], m[len(m)-1])
	}
}

// TestSpropSTAPA: the codec line's parameter sets as one STAP-A.
func TestSpropSTAPA(t *testing.T) {
	c := h264Codec
	if spropSTAPA(c) != nil {
		t.Fatal("parameter sets from a codec line without them")
	}
	c.Fmtp += ";sprop-parameter-sets=" + testSPS + "," + testPPS
	p := spropSTAPA(c)
	if p == nil || p[0]&0x1f != 24 {
		t.Fatalf("not a STAP-A: %x", p)
	}
	c.Fmtp = "packetization-mode=1;sprop-parameter-sets=!!!"
	if spropSTAPA(c) != nil {
		t.Fatal("parameter sets from bad base64")
	}
}

// TestHolderConcealment: a holder's lost packet is filled by the decoder's loss
// concealment, duplicates and late packets are dropped.
func TestHolderConcealment(t *testing.T) {
	h, err := newHolderAudio()
	if err != nil {
		t.Fatal(err)
	}
	pkts := encoded(t, 1000, 2, 6)
	push := func(seq uint16, i int) {
		t.Helper()
		if _, err := h.push(seq, pkts[i].Payload); err != nil {
			t.Fatal(err)
		}
	}
	const frame = tickFrame * channels
	push(10, 0)
	push(11, 1)
	push(11, 1) // duplicate
	push(9, 2)  // late
	if h.buf.n != 2*frame {
		t.Fatalf("%d samples after two packets, a duplicate and a late one; want %d", h.buf.n, 2*frame)
	}
	push(13, 3) // 12 lost: concealed
	if h.buf.n != 4*frame {
		t.Fatalf("%d samples after a lost packet; want %d", h.buf.n, 4*frame)
	}
	push(13+maxConceal+2, 4) // too many lost: not concealed
	if h.buf.n != 5*frame {
		t.Fatalf("%d samples after a long loss; want %d", h.buf.n, 5*frame)
	}
}
