package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"lectern/sfu"
)

// Restarts of a failing ffmpeg are spaced from restartMin, doubling to restartMax;
// a process that ran restartReset resets the spacing.
const (
	restartMin   = 500 * time.Millisecond
	restartMax   = 30 * time.Second
	restartReset = 30 * time.Second
	// gapResync is the pause in a source after which the variant starts a new
	// stream placed by arrival time (ffmpeg's output knows no gaps).
	gapResync = 300 * time.Millisecond
)

// aacDecoder decodes AAC with an ffmpeg process: access units in ADTS framing on
// its stdin, 48 kHz stereo s16le PCM from its stdout, which is cut into 20 ms Opus
// frames. A process that fails is restarted (spaced out); packets that arrive
// meanwhile are dropped.
type aacDecoder struct {
	format  *aacFormat
	ffmpeg  string
	log     *slog.Logger
	metrics *metrics
}

func (d *aacDecoder) channels() int { return 2 }

// ffmpegArgs decode ADTS from stdin to PCM on stdout with as little buffering as
// ffmpeg allows: no probing beyond the first frame, every output packet flushed.
func ffmpegArgs() []string {
	return []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-probesize", "32", "-analyzeduration", "0", "-fflags", "nobuffer",
		"-f", "aac", "-i", "pipe:0",
		"-f", "s16le", "-ar", "48000", "-ac", "2", "-flush_packets", "1", "pipe:1"}
}

func (d *aacDecoder) run(ctx context.Context, in <-chan *sfu.Packet, out *opusOut, relayed func() bool) error {
	delay := restartMin
	for {
		started := time.Now()
		err := d.process(ctx, in, out, relayed)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRelayed) {
			return err
		}
		d.metrics.errors.WithLabelValues(reasonDecoder).Inc()
		if time.Since(started) > restartReset {
			delay = restartMin
		}
		d.log.Error("AAC decoder (ffmpeg) failed; restarting", "err", err, "in", delay)
		t := time.NewTimer(delay)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case p := <-in:
				p.Release()
			case <-t.C:
				break wait
			}
		}
		delay = min(2*delay, restartMax)
	}
}

// process runs one ffmpeg until it fails or ctx ends: this goroutine feeds it,
// another reads it.
func (d *aacDecoder) process(ctx context.Context, in <-chan *sfu.Packet, out *opusOut, relayed func() bool) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, d.ffmpeg, ffmpegArgs()...)
	cmd.WaitDelay = 2 * time.Second
	stderr := &tailBuffer{max: 2048}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	var gap gapFlag
	readErr := make(chan error, 1)
	go func() {
		err := readPCM(stdout, out, &gap)
		cancel() // the feeder stops too
		readErr <- err
	}()
	feedErr := d.feed(pctx, in, stdin, &gap, relayed)
	_ = stdin.Close()
	cancel()
	rerr := <-readErr
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(feedErr, errRelayed) {
		return feedErr
	}
	return fmt.Errorf("ffmpeg: %w (%s)", errors.Join(feedErr, rerr, werr), bytes.TrimSpace(stderr.bytes()))
}

// gapFlag tells the reader that the source paused: its next frame starts a new
// stream.
type gapFlag struct {
	mu  sync.Mutex
	set bool
}

func (g *gapFlag) mark() { g.mu.Lock(); g.set = true; g.mu.Unlock() }

func (g *gapFlag) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	set := g.set
	g.set = false
	return set
}

// feed writes the access units of the queued packets to ffmpeg until ctx ends or
// a write fails.
func (d *aacDecoder) feed(ctx context.Context, in <-chan *sfu.Packet, w io.Writer, gap *gapFlag, relayed func() bool) error {
	dep := aacDepacketizer{f: d.format}
	var hdr [7]byte
	var last int64
	var buf []byte
	for {
		p, err := receive(ctx, in, relayed)
		if p == nil {
			return err
		}
		if last != 0 && p.ArrivalNanos-last > int64(gapResync) {
			gap.mark()
		}
		last = p.ArrivalNanos
		aus, err := dep.push(p.Payload, p.Header.Timestamp, p.Header.Marker)
		if err != nil {
			d.metrics.errors.WithLabelValues(reasonBadInput).Inc()
		}
		buf = buf[:0]
		for _, au := range aus {
			d.format.adtsHeader(&hdr, len(au))
			buf = append(append(buf, hdr[:]...), au...)
		}
		p.Release()
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("write to ffmpeg: %w", err)
			}
		}
	}
}

// readPCM cuts ffmpeg's output into 20 ms stereo frames and sends them, until EOF.
func readPCM(r io.Reader, out *opusOut, gap *gapFlag) error {
	var raw [frameSamples * 2 * 2]byte
	var pcm [frameSamples * 2]int16
	var ts uint32
	for {
		if _, err := io.ReadFull(r, raw[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("ffmpeg closed its output")
			}
			return fmt.Errorf("read from ffmpeg: %w", err)
		}
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		if gap.take() {
			out.resync()
		}
		if err := out.write(pcm[:], ts); err != nil {
			return err
		}
		ts += frameSamples
	}
}

// tailBuffer keeps the last max bytes written (ffmpeg's error messages).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}
