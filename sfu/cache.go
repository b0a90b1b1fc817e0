package sfu

// packetCache keeps the most recent packets of a track by sequence number, to answer
// NACKs from any consumer. One cache per track, shared by all consumers, rather than a
// retransmission buffer per consumer connection.
type packetCache struct {
	ring []*Packet // index: seq % len(ring); len is a power of two
}

func newPacketCache(size int) packetCache {
	n := 1
	for n < size {
		n <<= 1
	}
	return packetCache{ring: make([]*Packet, n)}
}

// put stores p, which must already hold the reference the cache owns.
func (c *packetCache) put(p *Packet) {
	i := int(p.Header.SequenceNumber) & (len(c.ring) - 1)
	if old := c.ring[i]; old != nil {
		old.Release()
	}
	c.ring[i] = p
}

// get returns the packet with that sequence number, retained for the caller, or nil.
func (c *packetCache) get(seq uint16) *Packet {
	p := c.ring[int(seq)&(len(c.ring)-1)]
	if p == nil || p.Header.SequenceNumber != seq {
		return nil
	}
	p.Retain()
	return p
}

func (c *packetCache) clear() {
	for i, p := range c.ring {
		if p != nil {
			p.Release()
			c.ring[i] = nil
		}
	}
}

// gopCache keeps the packets from the last keyframe on, so a consumer that joins
// mid-stream starts decoding at once instead of waiting for the publisher's next
// keyframe (an RTSP camera ignores keyframe requests; a browser honours them only
// after a round trip). It is bounded: past the limit it stops growing and a joiner
// gets a keyframe request instead.
type gopCache struct {
	pkts     []*Packet
	limit    int
	complete bool // no packet since the keyframe was left out
}

func (g *gopCache) reset(p *Packet) {
	g.clear()
	p.Retain()
	g.pkts = append(g.pkts, p)
	g.complete = true
}

func (g *gopCache) add(p *Packet) {
	if len(g.pkts) == 0 || !g.complete {
		return
	}
	if len(g.pkts) >= g.limit {
		g.complete = false
		return
	}
	p.Retain()
	g.pkts = append(g.pkts, p)
}

func (g *gopCache) clear() {
	for i, p := range g.pkts {
		p.Release()
		g.pkts[i] = nil
	}
	g.pkts = g.pkts[:0]
	g.complete = false
}
