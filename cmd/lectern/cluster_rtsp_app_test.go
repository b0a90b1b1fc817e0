package main

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"lectern/internal/testenv"
	"lectern/internal/testpeer"
)

// TestClusterRTSPReadOnEdge: a classroom's RTSP player pointed at the edge plays
// the trainer who publishes on the origin: the RTSP server asks the web layer to
// pull the session here before it plans the reader (rtsp.Config.Prepare).
func TestClusterRTSPReadOnEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("two nodes and a redis-server: not with -short")
	}
	rds := testenv.StartRedis(t)
	_, hn := clusterApp(t, rds.URL(), "hn-1", "north")
	edge, _ := clusterApp(t, rds.URL(), "hue-1", "centre", "-rtsp", "127.0.0.1:0")
	id := createSession(t, hn, clusterAdmin, "RTSP ở Huế")
	trainer := mintToken(t, hn, clusterAdmin, id, "trainer")
	site := mintToken(t, hn, clusterAdmin, id, "site")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, sdpSignal(t, hn+"/whip/"+id+"?placed=1", trainer))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stop := playSynthetic(ctx, pub)
	defer stop()

	c, desc, err := testenv.DescribeRTSP(t, "rtsp://"+edge.rtsp.Addr()+"/"+id+"?token="+url.QueryEscape(site), 30*time.Second)
	defer c.Close()
	if err != nil {
		t.Fatalf("DESCRIBE on the edge of a session published on the origin: %v", err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	var video, audio atomic.Int64
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		if m.Type == description.MediaTypeVideo {
			video.Add(1)
		} else {
			audio.Add(1)
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(ctx, t, "the trainer's video and audio over RTSP on the edge", func() bool {
		return video.Load() > 60 && audio.Load() > 30
	})
}
