package tables

import (
	"crypto/sha256"

	"github.com/cgw-project/cgw/bpf/maps"
)

// Key material in the dataplane's Go memory, and what is zeroed:
//   - the snapshot's SA records (maps.Tables.SAs): WipeKeys, which
//     cgw-dataplane calls once Build has made the View;
//   - the KEYMAT that maps.Keys assembles and the SA copies Build works
//     on: zeroed as soon as the cipher is made;
//   - the SA cache keeps a SHA-256 digest of the keys, not the keys, to
//     tell a reinstalled SA with new keys from an unchanged one.
//
// What Go does not let us zero: the ciphers themselves. crypto/aes keeps
// its expanded key schedule and crypto/hmac its inner and outer pad
// states unexported (and the CBC transform a copy of the integrity key
// for its per-worker HMACs); they live until the garbage collector frees
// an SA nobody uses any more, and freed memory is not cleared until it
// is reused. Workers may still hold a View with a removed SA for a batch,
// so nothing could be wiped at removal anyway without knowing that none
// does. PR_SET_DUMPABLE 0 and no core files (internal/harden) keep that
// memory from leaving the process.

// WipeKeys zeroes the key bytes of every SA in a snapshot. Call it once
// the snapshot is built (Build reads the keys); the snapshot's other
// fields stay usable.
func WipeKeys(t *maps.Tables) {
	for idx, sa := range t.SAs {
		WipeSAKeys(&sa)
		t.SAs[idx] = sa
	}
}

// WipeSAKeys zeroes one SA record's keys and salt.
func WipeSAKeys(sa *maps.SA) {
	clear(sa.EncKey[:])
	clear(sa.Salt[:])
	clear(sa.IntegKey[:])
}

// keyDigest identifies an SA's keys without keeping them.
func keyDigest(sa *maps.SA) [32]byte {
	h := sha256.New()
	h.Write(sa.EncKey[:])
	h.Write(sa.Salt[:])
	h.Write(sa.IntegKey[:])
	var d [32]byte
	h.Sum(d[:0])
	return d
}
