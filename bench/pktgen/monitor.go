package pktgen

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Monitor prints one progress line a second while a run goes: offered
// (from Live), delivered and loss (from Delivered), and the CPU share of
// the device under test (from CPU). Nil functions leave their columns
// out.
type Monitor struct {
	W         io.Writer // nil: no lines, the figures are still kept
	Live      *Live
	Delivered func() (uint64, error)        // frames counted by the sink so far
	CPU       func() (time.Duration, error) // CPU time of the device under test so far
	Every     time.Duration                 // default 1 s

	mu    sync.Mutex
	lines []Progress
	stop  chan struct{}
	done  chan struct{}
}

type monSample struct {
	at                      time.Time
	sent, bytes, exp, deliv uint64
	cpu                     time.Duration
}

func (m *Monitor) sample() monSample {
	s := monSample{at: time.Now(), sent: m.Live.Sent.Load(), bytes: m.Live.Bytes.Load(), exp: m.Live.Expected.Load()}
	if m.Delivered != nil {
		s.deliv, _ = m.Delivered()
	}
	if m.CPU != nil {
		s.cpu, _ = m.CPU()
	}
	return s
}

// Start begins sampling; Stop ends it and returns the lines.
func (m *Monitor) Start() {
	if m.Every <= 0 {
		m.Every = time.Second
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	start := m.sample()
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.Every)
		defer t.Stop()
		prev := start
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			cur := m.sample()
			p := progressOf(prev, cur, cur.at.Sub(start.at), m.Delivered != nil, m.CPU != nil)
			prev = cur
			m.mu.Lock()
			m.lines = append(m.lines, p)
			m.mu.Unlock()
			if m.W != nil {
				fmt.Fprintln(m.W, p.Line())
			}
		}
	}()
}

// Stop ends sampling and returns the progress of each interval.
func (m *Monitor) Stop() []Progress {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lines
}

// progressOf is the figures of the interval between two samples: rates
// over its length, loss as the expected frames the sink did not count in
// it (in-flight frames at its edges make single lines noisy, the final
// table is exact).
func progressOf(a, b monSample, at time.Duration, deliv, cpu bool) Progress {
	dt := b.at.Sub(a.at).Seconds()
	p := Progress{At: at, DeliveredPPS: -1, CPU: -1}
	p.OfferedPPS = per(float64(b.sent-a.sent), dt)
	p.OfferedB = per(8*float64(b.bytes-a.bytes), dt)
	if deliv {
		d := b.deliv - a.deliv
		p.DeliveredPPS = per(float64(d), dt)
		if e := b.exp - a.exp; e > d {
			p.Loss = float64(e-d) / float64(e)
		}
	}
	if cpu {
		p.CPU = per((b.cpu - a.cpu).Seconds(), dt)
	}
	return p
}
