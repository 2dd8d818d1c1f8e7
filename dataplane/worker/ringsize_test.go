package worker

import (
	"testing"

	"github.com/cgw-project/cgw/dataplane/afxdp"
)

// TestRingSizeFrames: a worker's UMEM holds four rings' worth of frames
// (two fill rings, a receive ring, transmit), never fewer than the
// default, so a larger ring is not starved of frames to fill it with.
func TestRingSizeFrames(t *testing.T) {
	for _, c := range []struct{ ring, frames int }{{0, afxdp.DefaultFrames}, {256, afxdp.DefaultFrames}, {1024, afxdp.DefaultFrames}, {4096, 16384}, {16384, 65536}} {
		cfg := WorkerConfig{RingSize: c.ring}
		cfg.setDefaults()
		if cfg.Frames != c.frames || cfg.RingSize == 0 {
			t.Errorf("RingSize %d: %d frames (ring %d), want %d", c.ring, cfg.Frames, cfg.RingSize, c.frames)
		}
	}
}
