package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/haproxytest"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/proving"
	"github.com/tandem-pg/tandem/upgrade"
)

// cliEnv is the example's releases, small (one instance per workload, a short drain),
// a database and a local backend directory, driven through the tandem CLI.
type cliEnv struct {
	t        *testing.T
	url, dir string
}

func newCLIEnv(t *testing.T) *cliEnv {
	haproxytest.Require(t)
	e := &cliEnv{t: t, url: pgtest.NewDatabase(t), dir: t.TempDir()}
	rel := filepath.Join(e.dir, "releases")
	if err := os.CopyFS(rel, catalog.ReleaseFiles); err != nil {
		t.Fatal(err)
	}
	for _, v := range catalog.Releases {
		path := filepath.Join(rel, v, "tandem.yaml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "instances: 3", "instances: 1")
		s = strings.ReplaceAll(s, `"{app-version}"]`, `"{app-version}", "--drain-delay", "300ms", "--shutdown-timeout", "5s"]`)
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.killAll)
	return e
}

// cmd returns the tandem CLI (this test binary, acting as it) with args.
func (e *cliEnv) cmd(args ...string) *exec.Cmd {
	args = append(args, "--postgres-url", e.url, "--local-dir", filepath.Join(e.dir, "local"))
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), execEnv+"=1")
	return c
}

// tandem runs the CLI to the end and returns its exit code and output.
func (e *cliEnv) tandem(args ...string) (int, string) {
	e.t.Helper()
	c := e.cmd(args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return 0, out.String()
}

func (e *cliEnv) release(v string) string { return filepath.Join(e.dir, "releases", v) }

// killAll stops what the detached backend left running: instances and HAProxy.
func (e *cliEnv) killAll() {
	b, err := os.ReadFile(filepath.Join(e.dir, "local", "local.json"))
	if err != nil {
		return
	}
	type proc struct {
		PID int `json:"pid"`
	}
	var st struct {
		Router    []proc `json:"router"`
		Instances []struct {
			Proc proc `json:"proc"`
		} `json:"instances"`
	}
	_ = json.Unmarshal(b, &st)
	pids := []int{}
	for _, in := range st.Instances {
		pids = append(pids, in.Proc.PID)
	}
	for _, r := range st.Router {
		pids = append(pids, r.PID)
	}
	for _, pid := range pids {
		if pid > 0 { // kill(0) would be this test's own process group
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// servedBy asks the router which release answers.
func (e *cliEnv) servedBy() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "local", "local.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var st struct {
		RouterPort int `json:"router_port"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	// The router follows instantly in the CLI's default, but a reload takes a moment,
	// longer on a busy machine.
	var last string
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(st.RouterPort) + "/api/items?limit=1")
		if err == nil {
			resp.Body.Close()
			last = resp.Header.Get(catalog.ReleaseHeader)
			if resp.StatusCode == http.StatusOK {
				return last
			}
		}
	}
	e.t.Fatalf("nothing served through the router within a minute (last answer from %q)", last)
	return ""
}

// TestUpgradeCLI installs v1, plans v3 (refused: outside its window) and v2 (possible),
// and checks the exit codes of plan, apply --dry-run and a broken tandem.yaml.
func TestUpgradeCLI(t *testing.T) {
	e := newCLIEnv(t)
	if code, out := e.tandem("upgrade", "apply", e.release("v1")); code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("install v1: exit %d\n%s", code, out)
	}
	if got := e.servedBy(); got != "v1" {
		t.Errorf("served by %q, want v1", got)
	}
	if code, out := e.tandem("upgrade", "plan", e.release("v3")); code != 1 || !strings.Contains(out, "compatible-from v2") {
		t.Errorf("plan v3 beside v1: exit %d, want 1 naming compatible-from\n%s", code, out)
	}
	code, out := e.tandem("upgrade", "apply", "--dry-run", "--json", e.release("v2"))
	var p upgrade.Plan
	// core's three migrations and the reviews plugin's one; the ops stream's SQL files.
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || !p.Possible || len(p.Pending) != 4 || len(p.PreDeploy) != 1 || len(p.PostDeploy) != 1 {
		t.Errorf("apply --dry-run --json v2: exit %d\n%s", code, out)
	}
	bad := filepath.Join(e.dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("app: catalog\nversion: v9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := e.tandem("upgrade", "plan", bad); code != 2 || !strings.Contains(out, "bad.yaml") || !strings.Contains(out, "compatible-from") {
		t.Errorf("plan of a broken tandem.yaml: exit %d, want 2 naming the file and the key\n%s", code, out)
	}
	if code, out := e.tandem("upgrade", "status", "--app", "catalog", "--json"); code != 0 || !strings.Contains(out, `"status": "done"`) {
		t.Errorf("status: exit %d\n%s", code, out)
	}
}

// TestUpgradeKill9 kills `tandem upgrade apply` with SIGKILL at several moments of an
// upgrade v1 -> v2, then finishes it with `tandem upgrade resume`. The instances and
// HAProxy run detached, so they outlive the killed process; the next one adopts them.
func TestUpgradeKill9(t *testing.T) {
	for _, after := range []time.Duration{700 * time.Millisecond, 2 * time.Second, 3500 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			e := newCLIEnv(t)
			if code, out := e.tandem("upgrade", "apply", e.release("v1")); code != 0 {
				t.Fatalf("install v1: exit %d\n%s", code, out)
			}
			ctx := context.Background()
			pool := pgtest.NewPool(t, e.url)
			vs := "public_01_catalog"
			seed, err := lifecycle.NewPool(ctx, e.url, vs)
			if err != nil {
				t.Fatal(err)
			}
			if err := catalog.Seed(ctx, seed, 30_000); err != nil {
				t.Fatal(err)
			}
			seed.Close()
			c := e.cmd("upgrade", "apply", e.release("v2"))
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(after)
			_ = c.Process.Signal(syscall.SIGKILL)
			_ = c.Wait()
			var step string
			_ = pool.QueryRow(ctx, "SELECT step FROM tandem.upgrades WHERE status = 'running'").Scan(&step)
			t.Logf("killed after %s at step %q; its output:\n%s", after, step, out.String())

			code, rout := e.tandem("upgrade", "resume", "--app", "catalog")
			if code != 0 && strings.Contains(rout, "nothing to resume") {
				// Killed before the upgrade was recorded, or after it was done: in the
				// first case apply starts it afresh, in the second nothing is left.
				var status string
				_ = pool.QueryRow(ctx, "SELECT status FROM tandem.upgrades WHERE to_version = 'v2'").Scan(&status)
				if status != upgrade.StatusDone {
					code, rout = e.tandem("upgrade", "apply", e.release("v2"))
				} else {
					code = 0
				}
			}
			if code != 0 {
				t.Fatalf("resume: exit %d\n%s", code, rout)
			}
			code, sout := e.tandem("upgrade", "status", "--app", "catalog", "--json")
			var rep upgrade.StatusReport
			if code != 0 || json.Unmarshal([]byte(sout), &rep) != nil || rep.Upgrade.Status != upgrade.StatusDone || rep.Upgrade.To != "v2" {
				t.Fatalf("status after resume: exit %d\n%s", code, sout)
			}
			if got := e.servedBy(); got != "v2" {
				t.Errorf("served by %q after resume, want v2", got)
			}
			vers, err := (&lifecycle.Registry{DB: pool}).Versions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vers {
				if v.AppVersion != "v2" {
					t.Errorf("alive after the upgrade: %+v", vers)
				}
			}
			var rows, unlabeled int64
			if err := pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE label IS NULL) FROM items").Scan(&rows, &unlabeled); err != nil {
				t.Fatal(err)
			}
			if rows != 30_000 || unlabeled != 0 {
				t.Errorf("items: %d rows, %d without label; want 30000 and 0", rows, unlabeled)
			}
		})
	}
}

// TestDemo runs the demo at a CI size: a real upgrade v1 -> v2 under load, through
// HAProxy, with no failed request.
func TestDemo(t *testing.T) {
	haproxytest.Require(t)
	var out bytes.Buffer
	opts := proving.Options{Instances: 2, Rate: 30, Duration: 10 * time.Second, RolloutAt: 3 * time.Second, RouterLag: time.Second,
		Rows: 5000, Upgrade: "v2", Tandem: os.Args[0], InstanceEnv: []string{execEnv + "=1"},
		PostgresURL: pgtest.NewDatabase(t)}
	if err := runDemo(context.Background(), &out, opts, ""); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"failed: 0", "answered by v1: ", "answered by v2: ", "after the last v1 instance was gone",
		"identical after the upgrade", "Zero downtime"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
