package ike

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// SPIs hands out inbound ESP SPIs, unique across the tunnels of an
// engine, and finds the owner of one (counter-driven rekeys, DPD).
// 0–255 are reserved (RFC 4303 §2.1) and never returned.
type SPIs[T comparable] struct {
	mu    sync.Mutex
	owner map[uint32]T
}

// Alloc returns a fresh random SPI owned by o.
func (s *SPIs[T]) Alloc(o T) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner == nil {
		s.owner = map[uint32]T{}
	}
	var b [4]byte
	for {
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 {
			continue
		}
		if _, used := s.owner[spi]; !used {
			s.owner[spi] = o
			return spi
		}
	}
}

// Release frees the SPIs o owns among spis (another owner's are kept).
func (s *SPIs[T]) Release(o T, spis ...uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spi := range spis {
		if cur, ok := s.owner[spi]; ok && cur == o {
			delete(s.owner, spi)
		}
	}
}

// Owner returns who holds spi.
func (s *SPIs[T]) Owner(spi uint32) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.owner[spi]
	return o, ok
}

// Len is how many SPIs are held.
func (s *SPIs[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.owner)
}
