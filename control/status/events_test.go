package status

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

type hubSource struct {
	Hub
}

func (*hubSource) Status() *Status { return &Status{} }

// Events reach a subscribed client in order; a client that does not read
// is dropped without blocking Publish.
func TestEvents(t *testing.T) {
	src := &hubSource{Hub: Hub{Buffer: 4}}
	sock := filepath.Join(t.TempDir(), "c.sock")
	srv, err := Listen(sock, src)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Event, 10)
	go c.Events(ctx, func(e Event) bool { got <- e; return e.Type != "last" })
	for src.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	src.Publish(Event{Kind: "ike", Type: "tunnel-up", Tunnel: "t1"})
	src.Publish(Event{Kind: "route", Type: "add", Detail: "198.19.0.0/24 via t1", Time: time.Now()})
	src.Publish(Event{Kind: "bgp", Type: "last"})
	for _, want := range []string{"tunnel-up", "add", "last"} {
		select {
		case e := <-got:
			if e.Type != want {
				t.Fatalf("got %+v, want type %s", e, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event", want)
		}
	}

	// A subscriber that never reads: Publish goes on, the slow one is dropped.
	slow, _ := src.Subscribe()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			src.Publish(Event{Kind: "ike", Type: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	n := 0
	for range slow {
		n++
	}
	if n != 4 {
		t.Errorf("the slow subscriber got %d events before being dropped, want its buffer (4)", n)
	}
}
