package afxdp

import (
	"math"
	"strings"
	"testing"
)

func testUMEM(t testing.TB, frames, frameSize, headroom int) *UMEM {
	t.Helper()
	cfg := UMEMConfig{Frames: frames, FrameSize: frameSize, Headroom: headroom}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	return newUMEM(make([]byte, frames*frameSize), cfg)
}

func TestUMEMConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  UMEMConfig
		want string // "" = valid
	}{
		{UMEMConfig{}, ""},
		{UMEMConfig{FrameSize: 2048, Headroom: 2048 - 704}, ""},
		{UMEMConfig{FrameSize: 2048, Headroom: 2048 - 703}, "headroom must be 0..1344"},
		{UMEMConfig{FrameSize: 1024}, "frame size must be 2048 or 4096"},
		{UMEMConfig{FrameSize: 3000}, "frame size must be 2048 or 4096"},
		{UMEMConfig{Frames: -1}, "number of frames"},
		{UMEMConfig{FillSize: 1000}, "fill ring size must be a power of two"},
		{UMEMConfig{CompletionSize: -4}, "completion ring size"},
	} {
		cfg := c.cfg
		err := cfg.setDefaults()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	cfg := UMEMConfig{}
	cfg.setDefaults()
	if cfg.Headroom < 52 {
		t.Errorf("default headroom %d cannot hold outer IPv4+UDP+ESP+IV (52 bytes)", cfg.Headroom)
	}
}

func TestDescValidation(t *testing.T) {
	const fs, hr = 2048, 256
	u := testUMEM(t, 8, fs, hr)
	size := uint64(8 * fs)
	for _, c := range []struct {
		d    Desc
		want string
	}{
		{Desc{Addr: 0, Len: 60}, ""},
		{Desc{Addr: fs + 512, Len: fs - 512}, ""},        // ends exactly at the frame's end
		{Desc{Addr: 7*fs + 256, Len: fs - hr}, ""},       // last frame, maximum length
		{Desc{Addr: fs + 513, Len: fs - 512}, "crosses"}, // one byte into the next frame
		{Desc{Addr: fs - 1, Len: 2}, "crosses"},
		{Desc{Addr: 0, Len: fs - hr + 1}, "more than frame size"},
		{Desc{Addr: 100, Len: 0}, "length 0"},
		{Desc{Addr: size, Len: 1}, "outside"},
		{Desc{Addr: size + fs, Len: 1}, "outside"},
		{Desc{Addr: math.MaxUint64 - 10, Len: 60}, "outside"}, // Addr+Len overflows
		{Desc{Addr: 64, Len: 60, Options: 1}, "options"},
	} {
		err := u.CheckDesc(c.d)
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: CheckDesc = %v, want %q", c.d, err, c.want)
		}
		if u.Valid(c.d) != (c.want == "") {
			t.Errorf("%+v: Valid = %v, want %v", c.d, u.Valid(c.d), c.want == "")
		}
	}
}

func TestUMEMLayout(t *testing.T) {
	u := testUMEM(t, 4, 4096, 128)
	if u.Frames() != 4 || u.FrameSize() != 4096 || u.Headroom() != 128 || u.DataOffset() != 128+256 || u.MaxData() != 4096-128 {
		t.Fatalf("layout: frames %d size %d headroom %d data offset %d max %d",
			u.Frames(), u.FrameSize(), u.Headroom(), u.DataOffset(), u.MaxData())
	}
	a, ok := u.Alloc()
	if !ok || a != 0 {
		t.Fatalf("first Alloc = %#x, %v; want 0", a, ok)
	}
	b, _ := u.Alloc()
	if b != 4096 {
		t.Fatalf("second Alloc = %#x, want 0x1000", b)
	}
	d := u.DescAt(b+77, 100)
	if d.Addr != 4096+384 || d.Len != 100 || !u.Valid(d) {
		t.Fatalf("DescAt = %+v", d)
	}
	data := u.Data(d)
	if len(data) != 100 || cap(data) != 4096-384 {
		t.Fatalf("Data: len %d cap %d, want 100 and %d", len(data), cap(data), 4096-384)
	}
	data[0] = 0xab
	if fr := u.Frame(d.Addr + 5); len(fr) != 4096 || fr[384] != 0xab || u.FrameBase(d.Addr) != b {
		t.Fatalf("Frame does not see Data's write")
	}
	copy(u.Frame(d.Addr)[384-4:], []byte{1, 2, 3, 4})
	if m := u.Metadata(d, 4); len(m) != 4 || cap(m) != 4 || m[0] != 1 || m[3] != 4 {
		t.Fatalf("Metadata = %v (cap %d), want the 4 bytes before the data", m, cap(m))
	}
	if u.Metadata(d, 385) != nil || u.Metadata(Desc{Addr: b}, 1) != nil || u.Metadata(d, -1) != nil {
		t.Fatal("Metadata reached before the start of the frame")
	}
	u.Free(d.Addr)
	u.Free(a)
	u.Free(a)
	if u.FreeFrames() != 4 || u.free.doubleFree != 1 {
		t.Fatalf("after frees: %d free, %d double frees; want 4 and 1", u.FreeFrames(), u.free.doubleFree)
	}
}
