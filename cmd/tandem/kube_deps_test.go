package main

import (
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/deps"
)

// heavyKube are packages the tandem binary must not link: client-go's typed clientset
// (its scheme registers every API group), its discovery and REST mapper, and what they
// bring (OpenAPI models, structured-merge-diff's typed merging). Together they made
// every tandem command, lint included, start 20 ms slower and the binary 35 MB larger;
// upgrade/kube/kubeapi does the little Tandem needs. Each entry matches itself and the
// packages under it.
var heavyKube = []string{
	"k8s.io/client-go/kubernetes",
	"k8s.io/client-go/discovery",
	"k8s.io/client-go/restmapper",
	"k8s.io/client-go/applyconfigurations",
	"k8s.io/client-go/gentype",
	"k8s.io/client-go/testing",
	"k8s.io/client-go/openapi",
	"k8s.io/kube-openapi/pkg/validation",
	"k8s.io/kube-openapi/pkg/schemaconv",
	"k8s.io/kube-openapi/pkg/util/proto",
	"github.com/google/gnostic-models",
	"sigs.k8s.io/structured-merge-diff/v6/typed",
	// client-go's dynamic client: kubeapi's Apply sends the apply patch on its REST client.
	"k8s.io/client-go/dynamic",
	// The Prometheus Go client and what it brings (procfs, expvar, its collectors):
	// lifecycle, which the tandem binary links, writes its /metrics itself.
	"github.com/prometheus/client_golang",
	"github.com/prometheus/procfs",
	"github.com/prometheus/client_model",
	"github.com/prometheus/common",
}

// TestNoHeavyKubePackages lists the tandem binary's packages (go list -deps) and fails
// if one of heavyKube is back, naming the chain of imports that brings it.
func TestNoHeavyKubePackages(t *testing.T) {
	g := deps.ListOrSkip(t)
	if len(g.Imports) < 10 || !strings.HasSuffix(g.Root, "/cmd/tandem") {
		t.Fatalf("go list -deps listed %d packages ending with %q: not the tandem command's", len(g.Imports), g.Root)
	}
	for _, chain := range g.Chains(deps.Under(heavyKube...)) {
		t.Errorf("the tandem binary links %s again, through %s: use upgrade/kube/kubeapi or lifecycle's metrics (or import it from a _test.go file only)",
			chain[len(chain)-1], strings.Join(chain, " -> "))
	}
}
