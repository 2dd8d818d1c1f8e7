package ike

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
)

// PanicCounter counts panics an engine recovered from (a tunnel's message
// or timer handler): the tunnel was restarted, the other tunnels went on.
// control/metrics exports Panics as cgw_control_panics_total.
type PanicCounter struct{ n atomic.Uint64 }

// Panics is the process's count, shared by both engines.
var Panics PanicCounter

// Load returns the count.
func (p *PanicCounter) Load() uint64 { return p.n.Load() }

// Recovered counts r (what recover returned, non-nil) and logs it once
// with the stack of the goroutine that panicked. Call it from the
// deferred function that recovered.
func (p *PanicCounter) Recovered(log *slog.Logger, r any, args ...any) {
	p.n.Add(1)
	args = append(args, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	log.Error("recovered from a panic; restarting the tunnel (please report this with the stack)", args...)
}
