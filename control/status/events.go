package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Event is one change cgw-control reports on GET /v1/events (cgwctl
// monitor): an IKE or Child SA up, rekeyed or deleted, a BGP session's
// state, a route installed, replaced or withdrawn.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // ike, bgp, route
	Type   string    `json:"type"` // e.g. child-sa-installed, established, replace
	Tunnel string    `json:"tunnel,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

func (e Event) String() string {
	s := e.Time.Format("15:04:05.000") + " " + e.Kind + " " + e.Type
	if e.Tunnel != "" {
		s += " " + e.Tunnel
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// EventSource is implemented by a Source that streams events.
type EventSource interface {
	// Subscribe returns a channel of events and a function that ends the
	// subscription. The channel is closed when the subscriber is dropped.
	Subscribe() (<-chan Event, func())
}

// Hub fans events out to subscribers. Publish never blocks: a subscriber
// whose buffer is full is dropped (its channel closed), so a slow client
// cannot hold up the daemon.
type Hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
	// Buffer is each subscriber's queue length (default 256).
	Buffer int
}

// Subscribe implements EventSource.
func (h *Hub) Subscribe() (<-chan Event, func()) {
	n := h.Buffer
	if n <= 0 {
		n = 256
	}
	ch := make(chan Event, n)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan Event]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() { h.drop(ch) }
}

func (h *Hub) drop(ch chan Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// Publish sends e to every subscriber that has room and drops the others.
func (h *Hub) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Subscribers returns how many clients are subscribed.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func serveEvents(mux *http.ServeMux, src EventSource) {
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		ch, cancel := src.Subscribe()
		defer cancel()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		if fl != nil {
			fl.Flush()
		}
		enc := json.NewEncoder(w)
		for {
			select {
			case e, ok := <-ch:
				if !ok {
					// Dropped for falling behind: say so, the client reconnects.
					enc.Encode(Event{Time: time.Now(), Kind: "monitor", Type: "dropped", Detail: "this client fell behind the event stream and was dropped"})
					return
				}
				if err := enc.Encode(e); err != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			case <-r.Context().Done():
				return
			}
		}
	})
}

// Events streams cgw-control's events to fn until ctx ends, the server
// closes the stream, or fn returns false.
func (c *Client) Events(ctx context.Context, fn func(Event) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://cgw-control/v1/events", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &APIError{Code: resp.StatusCode, Method: http.MethodGet, Path: "/v1/events", Msg: resp.Status}
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		if !fn(e) {
			return nil
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return err
	}
	return nil
}
