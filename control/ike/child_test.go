package ike

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	var evs []Event
	var released []uint32
	var pre []ChildSA
	l := Lifecycle{Emit: func(e Event) { evs = append(evs, e) }, Release: func(s ...uint32) { released = append(released, s...) },
		InstallInbound: func(c ChildSA) error { pre = append(pre, c); return errors.New("dataplane slow") }, Grace: 5 * time.Second}
	mk := func(in uint32) *ChildSA {
		return &ChildSA{InSPI: in, OutSPI: in + 1, InKeymat: bytes.Repeat([]byte{0xaa}, 36), OutKeymat: bytes.Repeat([]byte{0xbb}, 36)}
	}
	a, b := mk(0x100), mk(0x200)
	l.Preinstall(a)
	l.Install(a)
	if !l.Switch(a, &IKESAInfo{}) || !l.Up() {
		t.Fatal("the first switch did not bring the tunnel up")
	}
	l.Install(b)
	if l.Switch(b, nil) {
		t.Fatal("a second switch brought the tunnel up again")
	}
	l.Retire(a)
	if !l.Down("test", nil) || l.Down("test", nil) {
		t.Fatal("Down must report once")
	}
	var types []EventType
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []EventType{ChildSAInstalled, OutboundSwitch, TunnelUp, ChildSAInstalled, OutboundSwitch, ChildSARetired, TunnelDown}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	// The receiver's keys are its own copy; the retired pair's are wiped.
	if !bytes.Equal(evs[0].Child.InKeymat, bytes.Repeat([]byte{0xaa}, 36)) || !bytes.Equal(pre[0].OutKeymat, bytes.Repeat([]byte{0xbb}, 36)) {
		t.Fatal("ChildSAInstalled or InstallInbound lost the keys after the pair was retired")
	}
	if evs[1].Child.InKeymat != nil || evs[5].Child.OutKeymat != nil {
		t.Fatal("OutboundSwitch and ChildSARetired must carry no keys")
	}
	if !bytes.Equal(a.InKeymat, make([]byte, 36)) || !bytes.Equal(a.OutKeymat, make([]byte, 36)) {
		t.Fatalf("retired pair's keys not zeroed: %x %x", a.InKeymat, a.OutKeymat)
	}
	if bytes.Equal(b.InKeymat, make([]byte, 36)) {
		t.Fatal("the live pair's keys were zeroed")
	}
	if len(released) != 1 || released[0] != 0x100 {
		t.Fatalf("released %x, want [100]", released)
	}
	if got := l.RetireAt(time.Unix(10, 0)); !got.Equal(time.Unix(15, 0)) {
		t.Fatalf("RetireAt = %v", got)
	}
}
