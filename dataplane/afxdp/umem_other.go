//go:build !linux

package afxdp

// umemSys is empty where AF_XDP does not exist; the portable ring, free-list
// and descriptor code still builds and tests.
type umemSys struct{}
