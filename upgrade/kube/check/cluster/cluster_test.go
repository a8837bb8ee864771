package cluster

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tandem-pg/tandem/upgrade/kube/check"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi/kubeapitest"
)

// key is what a finding says, apart from where.
func keys(res *check.Result) []string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, strings.Join([]string{f.Rule, string(f.Severity), f.Object, f.Container}, " "))
	}
	slices.Sort(out)
	return out
}

// TestSameFindingsAsManifests loads the manifests of the check package's testdata into
// client-go's in-memory clientset (an object tracker behind the real typed client, not
// an API server: that test belongs with the cluster tests) and reads them back through
// Source: the findings are those of the manifests, located in the cluster.
func TestSameFindingsAsManifests(t *testing.T) {
	td := filepath.Join("..", "testdata")
	for _, name := range []string{"good.yaml", "rules/rwo-volume.yaml", "rules/pod-disruption-budget.yaml", "rules/drain-delay.yaml"} {
		t.Run(name, func(t *testing.T) {
			in, err := check.Files{Paths: []string{filepath.Join(td, name)}}.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var objs []runtime.Object
			for _, o := range in.Objects {
				switch {
				case o.Deployment != nil:
					d := o.Deployment.DeepCopy()
					d.Namespace = o.Namespace
					objs = append(objs, d)
				case o.PVC != nil:
					c := o.PVC.DeepCopy()
					c.Namespace = o.Namespace
					objs = append(objs, c)
				case o.PDB != nil:
					b := o.PDB.DeepCopy()
					b.Namespace = o.Namespace
					objs = append(objs, b)
				}
			}
			src := Source{Client: kubeapitest.Clientset{Interface: fake.NewClientset(objs...)}, Name: "cluster test"}
			live, err := src.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if live.Read != len(in.Objects) {
				t.Errorf("read %d objects from the cluster, want %d", live.Read, len(in.Objects))
			}
			fromFiles, fromCluster := check.Check(in, check.Options{}), check.Check(live, check.Options{})
			if a, b := keys(fromFiles), keys(fromCluster); !slices.Equal(a, b) {
				t.Errorf("findings differ:\nmanifests: %q\ncluster:   %q", a, b)
			}
			for _, f := range fromCluster.Findings {
				if f.File != "cluster test" || f.Line != 0 {
					t.Errorf("finding located at %s:%d, want the cluster", f.File, f.Line)
				}
			}
		})
	}
}

// TestNamespace: a Source reads its namespace only; "" reads all.
func TestNamespace(t *testing.T) {
	in, err := check.Files{Paths: []string{filepath.Join("..", "testdata", "rules", "pod-disruption-budget.yaml")}}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var objs []runtime.Object
	for _, o := range in.Objects {
		if o.Deployment != nil {
			d := o.Deployment.DeepCopy()
			d.Namespace = o.Namespace
			objs = append(objs, d)
		}
	}
	client := kubeapitest.Clientset{Interface: fake.NewClientset(objs...)}
	for ns, want := range map[string]int{"": 4, "other": 1, "default": 3, "none": 0} {
		live, err := Source{Client: client, Namespace: ns, Name: "c"}.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(live.Objects) != want {
			t.Errorf("namespace %q: %d objects, want %d", ns, len(live.Objects), want)
		}
	}
}
