package recorder

// arenaBlock is the size of an arena's blocks.
const arenaBlock = 256 << 10

// arena hands out copies of byte slices carved from large blocks, for memory
// that is kept for a while (the access units a recording holds until it
// starts): one allocation per block instead of one per NAL unit or packet. It
// never writes a byte it has handed out again (a new block is allocated when one
// is full), and each copy's capacity is capped at its length, so the copies can
// be kept as long as needed: the garbage collector frees a block once nothing
// refers to any part of it. One goroutine uses an arena; its zero value is ready
// to use.
type arena struct {
	block []byte // len: bytes handed out, cap: block size
}

// copy returns a copy of b.
func (a *arena) copy(b []byte) []byte {
	if cap(a.block)-len(a.block) < len(b) {
		a.block = make([]byte, 0, max(arenaBlock, len(b)))
	}
	start := len(a.block)
	a.block = append(a.block, b...)
	return a.block[start:len(a.block):len(a.block)]
}
