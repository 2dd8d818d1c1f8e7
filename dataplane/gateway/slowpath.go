package gateway

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cgw-project/cgw/dataplane/slowpath"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
)

// slowPath keeps one TUN device per tunnel that has an inside address
// (DESIGN §3): decrypted packets for the gateway itself are written to it
// (worker.SlowPath), and what the kernel sends into it is read by one
// goroutine per device and handed to a worker to encrypt.
type slowPath struct {
	m    *slowpath.Manager
	devs atomic.Pointer[map[uint32]*tun]
	mu   sync.Mutex // Reconcile
	// swept: the devices a killed dataplane left for tunnels no longer in
	// the table are removed (once, at the first Reconcile).
	swept bool
}

type tun struct {
	dev *slowpath.Device
	id  uint32
	wmu sync.Mutex // Device.Write is not for concurrent callers; workers share it
}

func newSlowPath() *slowPath {
	s := &slowPath{m: slowpath.NewManager("")}
	empty := map[uint32]*tun{}
	s.devs.Store(&empty)
	return s
}

// tunPrefix begins every tunnel's kernel interface name.
const tunPrefix = "cgw-t"

// tunName is the kernel interface of tunnel id.
func tunName(id uint32) string { return fmt.Sprintf("%s%d", tunPrefix, id) }

// Deliver implements worker.SlowPath.
func (s *slowPath) Deliver(tunnel uint32, pkts [][]byte) int {
	t := (*s.devs.Load())[tunnel]
	if t == nil {
		return 0
	}
	t.wmu.Lock()
	n, _ := t.dev.Write(pkts, 0)
	t.wmu.Unlock()
	return n
}

// Reconcile makes the devices match the view's tunnels and starts a
// reader for each new device.
func (s *slowPath) Reconcile(v *tables.View, workers []*worker.Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want []slowpath.Config
	ids := map[string]uint32{}
	for _, t := range v.Tunnels {
		if t == nil || !t.Inside.IsValid() {
			continue
		}
		name := tunName(t.ID)
		ids[name] = t.ID
		want = append(want, slowpath.Config{Name: name, Addrs: []netip.Prefix{t.Inside}, MTU: t.MTU})
	}
	if !s.swept {
		s.swept = true
		if err := s.m.RemoveStale(tunPrefix, want); err != nil {
			log.Printf("slow path: %v", err)
		}
	}
	added, err := s.m.Reconcile(want)
	if err != nil {
		log.Printf("slow path: %v", err)
	}
	devs := map[uint32]*tun{}
	old := *s.devs.Load()
	for _, d := range s.m.Devices() {
		id := ids[d.Name()]
		if t := old[id]; t != nil && t.dev == d {
			devs[id] = t
			continue
		}
		devs[id] = &tun{dev: d, id: id}
	}
	s.devs.Store(&devs)
	for _, d := range added {
		t := devs[ids[d.Name()]]
		if t == nil || len(workers) == 0 {
			continue
		}
		w := workers[int(t.id)%len(workers)]
		go read(t, w)
	}
}

// read hands what the kernel sends into a tunnel's device to a worker,
// two batches in flight so reading goes on while the worker encrypts.
func read(t *tun, w *worker.Worker) {
	free := make(chan *worker.KernelBatch, 2)
	for i := 0; i < 2; i++ {
		b := worker.NewKernelBatch(t.dev.BatchSize(), 2048)
		b.Done = free
		free <- b
	}
	for {
		b := <-free
		n, err := t.dev.Read(b.Bufs, b.Sizes, 0)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				log.Printf("slow path %s: %v", t.dev.Name(), err)
			}
			return
		}
		b.Tunnel, b.N = t.id, n
		if !w.Kernel(b) {
			return
		}
	}
}

// Close removes every device.
func (s *slowPath) Close() { s.m.Close() }
