package proving

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi/kubeapitest"
)

// pod is a pod of the test namespace that runs release rel.
func pod(name, rel string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
		Annotations: map[string]string{kube.AnnRelease: rel}}}
}

// TestPodWatchAtContract: the verdict pairs each contract of the report with the listing
// taken as its step began, and names the pods of the release it drops that were left, a
// listing that failed, and a contract with no listing.
func TestPodWatchAtContract(t *testing.T) {
	contract := func(what, step, old string) ContractCheck {
		return ContractCheck{Contract: what, Step: step, OldRelease: old}
	}
	v2 := contract("v2's contract", upgrade.StepContract, "v1")
	v3 := contract("v3's contract", upgrade.StepContract, "v2")
	deferred := contract("v2's deferred contract", upgrade.StepCompleteDeferred, "v1")

	type listing struct {
		step string
		pods []runtime.Object
		err  error
	}
	tests := []struct {
		name      string
		listings  []listing
		contracts []ContractCheck
		want      []string // in the reasons, in order; none means the verdict is clear
	}{
		{"no old pod left", []listing{{upgrade.StepContract, []runtime.Object{pod("b", "v2")}, nil}},
			[]ContractCheck{v2}, nil},
		{"an old pod left", []listing{{upgrade.StepContract, []runtime.Object{pod("a", "v1"), pod("b", "v2")}, nil}},
			[]ContractCheck{v2}, []string{"v2's contract began while v1 pods existed: a"}},
		// Two hops: the second contract drops v2, so v2's pods count there, not v1's.
		{"the second hop's own old release", []listing{
			{upgrade.StepContract, []runtime.Object{pod("b", "v2")}, nil},
			{upgrade.StepContract, []runtime.Object{pod("b", "v2"), pod("c", "v3")}, nil}},
			[]ContractCheck{v2, v3}, []string{"v3's contract began while v2 pods existed: b"}},
		{"a deferred contract and a hop's, paired per step", []listing{
			{upgrade.StepCompleteDeferred, []runtime.Object{pod("b", "v2")}, nil},
			{upgrade.StepContract, []runtime.Object{pod("c", "v3")}, nil}},
			[]ContractCheck{deferred, v3}, nil},
		{"a listing that failed", []listing{{upgrade.StepContract, nil, errors.New("apiserver down")}},
			[]ContractCheck{v2}, []string{"v2's contract: listing the pods as it began: ", "apiserver down"}},
		{"a contract with no listing", nil, []ContractCheck{v2}, []string{"v2's contract: no listing of the pods as it began"}},
		{"a listing with no contract", []listing{{upgrade.StepContract, nil, nil}}, nil, []string{"1 more contract steps began than the report has"}},
		{"no contract at all", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &podWatch{ns: "ns"}
			for _, l := range tt.listings {
				cs := fake.NewClientset(l.pods...)
				if l.err != nil {
					cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
						return true, nil, l.err
					})
				}
				p.client = kubeapitest.Clientset{Interface: cs}
				p.atContract(context.Background(), l.step)
			}
			why := strings.Join(p.oldAtContract(tt.contracts), "\n")
			if len(tt.want) == 0 && why != "" {
				t.Errorf("reasons %q, want none", why)
			}
			rest := why
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("reasons %q lack %q (in order)", why, w)
					break
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
