package main

import "testing"

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                              "1.2.3",
		"v1.2.3-rc.1":                         "1.2.3~rc.1",
		"v0.0.0-20261206121833-e87984d":       "0.0.0~20261206121833.e87984d",
		"v0.0.0-20261206121833-e87984d-dirty": "0.0.0~20261206121833.e87984d.dirty",
	} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q; want %q", in, got, want)
		}
	}
}
