package local

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/process"
	"github.com/tandem-pg/tandem/upgrade"
)

// serveEnv makes a copy of the test binary a tiny instance: it serves /readyz on the
// address that follows it on the command line, and exits on SIGTERM.
const serveEnv = "TANDEM_LOCAL_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		addr := os.Args[len(os.Args)-1]
		srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
		go func() { _ = srv.ListenAndServe() }()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testTarget(revision string, n int) upgrade.Target {
	return upgrade.Target{App: "t", Release: revision, Revision: revision, Workload: upgrade.Workload{
		Name: "api", Role: "worker", // not routed: these tests need no HAProxy
		Local: &upgrade.LocalWorkload{Instances: n, Command: []string{os.Args[0], "-test.run=^$", "{listen}"}},
	}}
}

func newTestBackend(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := New(Options{Dir: dir, Env: []string{serveEnv + "=1"}, Detach: true, ReadyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readState(t *testing.T, dir string) state {
	t.Helper()
	var st state
	data, err := os.ReadFile(filepath.Join(dir, "local.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func writeState(t *testing.T, dir string, st state) {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "local.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAdoption rolls a workload, then hands its directory to a new Backend (a new
// tandem process) that must find the instances and roll on from them.
func TestAdoption(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := newTestBackend(t, dir)
	t.Cleanup(func() { newTestBackend(t, dir).Shutdown(ctx) })
	if err := b.Roll(ctx, testTarget("r1", 2), nil, nil); err != nil {
		t.Fatal(err)
	}
	next := newTestBackend(t, dir)
	ins, err := next.Instances(ctx, testTarget("r2", 2))
	if err != nil || len(ins) != 2 || ins[0].Revision != "r1" {
		t.Fatalf("adopted %+v (%v), want the 2 instances of r1", ins, err)
	}
	if err := next.Roll(ctx, testTarget("r2", 2), nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ins, _ = next.Instances(ctx, testTarget("r2", 2))
		old := 0
		for _, in := range ins {
			if in.Revision != "r2" {
				old++
			}
		}
		if old == 0 && len(ins) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the roll: %+v", ins)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPIDReuse records an instance whose PID now belongs to another process: it must
// count as gone, and never be signalled.
func TestPIDReuse(t *testing.T) {
	dir := t.TempDir()
	stranger := exec.Command("sleep", "30")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stranger.Process.Kill() //nolint:errcheck
	id := process.Identify(stranger.Process.Pid)
	id.Start++ // the recorded process started at another time: not this one
	writeState(t, dir, state{Instances: []*instance{{Name: "api-1", Workload: "api", Proc: id, Ready: true, Stopping: true,
		Target: target{Revision: "r1"}, StartedAt: time.Now()}}})
	b := newTestBackend(t, dir)
	ins, err := b.Instances(context.Background(), testTarget("r2", 1))
	if err != nil || len(ins) != 0 {
		t.Errorf("instances %+v (%v), want none: the PID is another process's", ins, err)
	}
	b.Shutdown(context.Background()) // kills what it believes are its instances
	time.Sleep(200 * time.Millisecond)
	if !process.Identify(stranger.Process.Pid).Alive() { // a killed child would be a zombie now
		t.Error("the stranger was signalled")
	}
}

// TestCrashBeforePIDRecorded finds an instance started just before a crash, whose PID
// was never recorded, by the mark in its environment; and signals again an instance
// recorded as stopping but never signalled.
func TestCrashBeforePIDRecorded(t *testing.T) {
	dir := t.TempDir()
	b := newTestBackend(t, dir)
	ctx := context.Background()
	if err := b.Roll(ctx, testTarget("r1", 2), nil, nil); err != nil {
		t.Fatal(err)
	}
	st := readState(t, dir)
	pid := st.Instances[0].Proc.PID
	st.Instances[0].Proc = process.ID{} // the crash came before the PID was saved
	st.Instances[1].Stopping = true     // ... and before the second was signalled
	st.Instances[1].Signalled = false
	writeState(t, dir, st)

	next := newTestBackend(t, dir)
	ins, err := next.Instances(ctx, testTarget("r1", 2))
	// The stopping one may already have had its SIGTERM from the adoption and exited.
	if err != nil || len(ins) == 0 || len(ins) > 2 {
		t.Fatalf("instances %+v (%v), want the unrecorded one, and perhaps the stopping one", ins, err)
	}
	if ins[0].Name != "api-1" || ins[0].PID != pid {
		t.Errorf("found %s with pid %d, want api-1 with pid %d (by its environment's mark)", ins[0].Name, ins[0].PID, pid)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ins, _ = next.Instances(ctx, testTarget("r1", 2))
		if len(ins) == 1 {
			break // the stopping one got its SIGTERM and exited
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stopping instance was not signalled: %+v", ins)
		}
		time.Sleep(50 * time.Millisecond)
	}
	next.Shutdown(ctx)
}
