package esp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

func TestNewSAErrors(t *testing.T) {
	c := mustCipher(t, transform.Suites()[0])
	w := newWindow(t, 64, true)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Cipher: c}, "SPI 0"},
		{Config{SPI: 1}, "no cipher"},
		{Config{SPI: 1, Cipher: c, DF: 9}, "DF policy"},
		{Config{SPI: 1, Cipher: c, DSCP: 64}, "DSCP"},
		{Config{SPI: 1, Cipher: c, Src: netip.MustParseAddr("2001:db8::1"), Dst: testDst}, "IPv4"},
		{Config{SPI: 1, Cipher: c, UDPEncap: true}, "4500"},
		{Config{SPI: 1, Cipher: c, Replay: w}, "esn=true"},
		{Config{SPI: 1, Cipher: c, SoftLimit: 1 << 40}, "soft limit"},
	} {
		_, err := NewSA(tc.cfg)
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSA(%+v) = %v, want an ErrConfig mentioning %q", tc.cfg, err, tc.want)
		}
	}
}
