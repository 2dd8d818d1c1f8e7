package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	// comm with a space and a parenthesis, as the kernel writes it.
	line := "4242 (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n"
	st, err := parse(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "S" || st.Start != 987654 || st.CPU != 3800*time.Millisecond {
		t.Fatalf("got %+v, want state S, start 987654, cpu 3.8s", st)
	}
	if _, err := parse(1, []byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
}

func TestAlive(t *testing.T) {
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), self.Start) || Alive(os.Getpid(), self.Start+1) {
		t.Fatal("Alive does not tell this process by its start time")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid, 0) {
		t.Fatalf("reaped pid %d still alive", cmd.Process.Pid)
	}
}

// TestCPUTime: this process's CPU time in ns grows while it computes and
// agrees with the tick-rounded figure.
func TestCPUTime(t *testing.T) {
	c0, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 20_000_000; i++ {
		x += i ^ x
	}
	c1, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c1 <= c0 || x == 42 {
		t.Fatalf("CPU time did not grow while computing: %v then %v", c0, c1)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("CPUTime of a pid that does not exist succeeded")
	}
}

func TestCPUs(t *testing.T) {
	a, err := parseCPUs("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseCPUs("cpu  0\ncpu0 95 0 5 50 0 0 0 0 0 0\ncpu1 5 0 15 70 10 0 10 0 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	// cpu0: 90 busy of 100; cpu1: 20 busy (10 system, 10 softirq) of 60
	// (idle 30 + iowait 10 + busy 20).
	if got := Busy(a, b, []int{0}); got != 0.9 {
		t.Errorf("cpu0 busy %v, want 0.9", got)
	}
	if got := Busy(a, b, []int{0, 1}); got != 110.0/160 {
		t.Errorf("both busy %v, want %v", got, 110.0/160)
	}
	if _, err := parseCPUs("intr 1\n"); err == nil {
		t.Error("no cpu lines: no error")
	}
	if live, err := CPUs(); err != nil || len(live) == 0 {
		t.Errorf("this machine's /proc/stat: %v, %v", live, err)
	}
}
