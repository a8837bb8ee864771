package check

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readFile reads one manifest file of testdata.
func readFile(t *testing.T, name string) *Input {
	t.Helper()
	in, err := Files{Paths: []string{filepath.Join("testdata", name)}}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestGoodManifestPasses: a Deployment that does everything right, with its claim and
// budget, has no finding from any rule.
func TestGoodManifestPasses(t *testing.T) {
	res := Check(readFile(t, "good.yaml"), Options{})
	for _, f := range res.Findings {
		t.Errorf("unexpected finding: %s:%d %s: %s", f.File, f.Line, f.Rule, f.Message)
	}
	if res.Deployments != 1 || res.Objects != 3 || res.Files != 1 {
		t.Errorf("read %d Deployments, %d objects, %d files; want 1, 3, 1", res.Deployments, res.Objects, res.Files)
	}
}

// TestRules runs each rule on its testdata file: every Deployment named bad-* gets at
// least one finding of the rule (bad-warn-* at warning level only, others at error
// level), and no ok-* Deployment gets one.
func TestRules(t *testing.T) {
	for _, r := range Rules() {
		t.Run(r.ID, func(t *testing.T) {
			in := readFile(t, filepath.Join("rules", r.ID+".yaml"))
			res := Check(in, Options{})
			got := map[string][]Finding{}
			for _, f := range res.Findings {
				if f.Rule == r.ID {
					name := f.Object[strings.LastIndex(f.Object, "/")+1:]
					got[name] = append(got[name], f)
				}
			}
			bad := 0
			for _, o := range in.Objects {
				if o.Deployment == nil {
					continue
				}
				fs := got[o.Name]
				switch {
				case strings.HasPrefix(o.Name, "ok-"):
					for _, f := range fs {
						t.Errorf("%s: unexpected finding: %s", o.Name, f.Message)
					}
				case strings.HasPrefix(o.Name, "bad-"):
					bad++
					if len(fs) == 0 {
						t.Errorf("%s: %s did not fire", o.Name, r.ID)
					}
					want := SeverityError
					if strings.HasPrefix(o.Name, "bad-warn-") {
						want = SeverityWarning
					}
					for _, f := range fs {
						if f.Severity != want {
							t.Errorf("%s: severity %s, want %s: %s", o.Name, f.Severity, want, f.Message)
						}
						if !strings.Contains(f.Message, o.Namespace+"/"+o.Name) {
							t.Errorf("%s: the message does not name the object: %s", o.Name, f.Message)
						}
						if f.Fix == "" {
							t.Errorf("%s: no fix", o.Name)
						}
						// The finding points into the object's own document.
						if f.Line < o.Line || f.File != o.File {
							t.Errorf("%s: finding at %s:%d, the object starts at %s:%d", o.Name, f.File, f.Line, o.File, o.Line)
						}
					}
				default:
					t.Fatalf("testdata Deployment %s is named neither ok-* nor bad-*", o.Name)
				}
			}
			if bad == 0 {
				t.Errorf("no positive case for %s", r.ID)
			}
		})
	}
}

// TestFindingLocations: findings point at the field at fault, and name the container.
func TestFindingLocations(t *testing.T) {
	in, err := Parse("web.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  template:
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: app
          image: web:latest
          ports: [{containerPort: 80}]
          readinessProbe: {httpGet: {path: /readyz, port: 80}}
          lifecycle:
            preStop:
              sleep: {seconds: 7}
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	res := Check(in, Options{Disable: []string{RuleDisruptionBudget}})
	want := map[string][3]int{ // rule: line, column, and 1 when the container is named
		RuleGracePeriod:  {9, 7, 0},
		RuleImageVersion: {12, 11, 1},
	}
	if len(res.Findings) != len(want) {
		t.Errorf("got %d findings, want %d: %+v", len(res.Findings), len(want), res.Findings)
	}
	for _, f := range res.Findings {
		w, ok := want[f.Rule]
		if !ok {
			continue
		}
		if f.Line != w[0] || f.Column != w[1] {
			t.Errorf("%s at %d:%d, want %d:%d", f.Rule, f.Line, f.Column, w[0], w[1])
		}
		if (f.Container == "app") != (w[2] == 1) {
			t.Errorf("%s: container %q", f.Rule, f.Container)
		}
		if f.Object != "Deployment/shop/web" {
			t.Errorf("%s: object %q, want Deployment/shop/web (the default namespace given)", f.Rule, f.Object)
		}
	}
}

// TestOptions: the router's interval and the propagation set the drain the rule wants.
func TestOptions(t *testing.T) {
	in := readFile(t, "good.yaml") // preStop sleep 7s
	for _, tt := range []struct {
		reload, prop string
		fires        bool
	}{{"5s", "2s", false}, {"10s", "2s", true}, {"4s", "3s", false}, {"4s", "3100ms", true}} {
		r, _ := time.ParseDuration(tt.reload)
		p, _ := time.ParseDuration(tt.prop)
		res := Check(in, Options{RouterReload: r, Propagation: p})
		fired := slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Rule == RuleDrainDelay })
		if fired != tt.fires {
			t.Errorf("reload %s + propagation %s: drain-delay fired %v, want %v", tt.reload, tt.prop, fired, tt.fires)
		}
	}
}

func TestDisable(t *testing.T) {
	in := readFile(t, filepath.Join("rules", "image-version.yaml"))
	res := Check(in, Options{Disable: []string{RuleImageVersion}})
	for _, f := range res.Findings {
		if f.Rule == RuleImageVersion {
			t.Fatalf("disabled rule fired: %s", f.Message)
		}
	}
}
