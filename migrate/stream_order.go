package migrate

import (
	"fmt"
	"slices"
	"strings"
)

// StreamError is a set of streams that cannot be applied: a cycle, a dependency that
// cannot be met, a bad definition. It names the streams and migrations at fault and is
// returned before any DDL. The CLI exits with 2 for it.
type StreamError struct {
	Msg string
	Fix string
}

// Error implements error.
func (e *StreamError) Error() string {
	if e.Fix == "" {
		return e.Msg
	}
	return e.Msg + " (fix: " + e.Fix + ")"
}

// StreamStep is one pending migration of a stream plan.
type StreamStep struct {
	Stream string `json:"stream"`
	Kind   string `json:"kind"`            // StreamPgroll or StreamSQL
	Phase  string `json:"phase,omitempty"` // PhasePre or PhasePost for a plain-SQL file
	Name   string `json:"name"`            // the migration's or file's own name
	File   string `json:"file"`
	// Migration is a pgroll migration, named as its stream records it.
	Migration *Migration `json:"-"`
	// SQL is a plain-SQL file.
	SQL *SQLFile `json:"-"`
}

// String names the step as needs do: "<stream>/<name>".
func (s StreamStep) String() string {
	if s.Stream == "" {
		return s.Name
	}
	return s.Stream + "/" + s.Name
}

// StreamPlan is what applying a set of streams does, in order.
type StreamPlan struct {
	// Expand are the steps of the expand step: the pending pre-deploy files, then the
	// pending pgroll migrations, each list in dependency order.
	Expand []StreamStep `json:"expand"`
	// Combined is the pgroll migrations of Expand as one migration (see Combine); nil
	// when none is pending.
	Combined *Migration `json:"-"`
	// Contract are the pending post-deploy files, run once the old version is gone.
	Contract []StreamStep `json:"contract"`
}

// PreDeploy returns the plan's pending pre-deploy files.
func (p *StreamPlan) PreDeploy() []StreamStep {
	var out []StreamStep
	for _, s := range p.Expand {
		if s.Kind == StreamSQL {
			out = append(out, s)
		}
	}
	return out
}

// streamHistory is what the state schema says the streams applied.
type streamHistory struct {
	pgroll map[string]bool   // recorded names of completed migrations (combined ones' too)
	sql    map[string]string // sqlKey(stream, phase, name) -> checksum
}

func sqlKey(stream, phase, name string) string { return stream + "\x00" + phase + "\x00" + name }

// checkStreams validates a set of streams on its own: names, kinds, after and needs
// that name known streams, and no cycle among the streams.
func checkStreams(streams []*Stream) error {
	if len(streams) == 0 {
		return &StreamError{Msg: "no migration stream", Fix: "list at least one stream"}
	}
	byName := map[string]*Stream{}
	plain := ""
	for i, s := range streams {
		switch {
		case s.Name == "" && len(streams) > 1:
			return &StreamError{Msg: fmt.Sprintf("stream %d has no name", i+1), Fix: "name every stream of a release that has several"}
		case s.Name != "" && !ValidStreamName(s.Name):
			return &StreamError{Msg: fmt.Sprintf("%q is not a stream name", s.Name), Fix: "use lower-case letters, digits, '_' and '-', at most 40"}
		case byName[s.Name] != nil:
			return &StreamError{Msg: fmt.Sprintf("stream %q is listed twice", s.Name), Fix: "give each stream its own name"}
		}
		byName[s.Name] = s
		switch s.Kind {
		case StreamPgroll:
		case StreamSQL:
			if s.PlainNames {
				return &StreamError{Msg: fmt.Sprintf("stream %s: plain names are for a pgroll stream", s.Name), Fix: "leave plain-names out of an sql stream"}
			}
			for _, pre := range s.Pre {
				for _, post := range s.Post {
					if pre.Name == post.Name {
						return &StreamError{Msg: fmt.Sprintf("stream %s has %s both in pre-deploy (%s) and post-deploy (%s)", s.Name, pre.Name, pre.File, post.File),
							Fix: "give every file of a stream its own name"}
					}
				}
			}
		default:
			return &StreamError{Msg: fmt.Sprintf("stream %s: kind %q is not pgroll or sql", s.Name, s.Kind), Fix: "set kind: pgroll or kind: sql"}
		}
		if s.PlainNames {
			if plain != "" {
				return &StreamError{Msg: fmt.Sprintf("streams %s and %s both record plain names", plain, s.Name), Fix: "keep plain-names on one stream only (the one that continues a `migrations:` history)"}
			}
			plain = s.Name
		}
	}
	for _, s := range streams {
		for _, a := range s.After {
			if byName[a] == nil || a == s.Name {
				return &StreamError{Msg: fmt.Sprintf("stream %s is after %q, which is not another stream of the release", s.Name, a),
					Fix: "name a stream listed in the release"}
			}
		}
		var needs []struct {
			what string
			need Need
		}
		for _, mig := range s.Migrations {
			for _, n := range mig.Needs {
				needs = append(needs, struct {
					what string
					need Need
				}{mig.File, n})
			}
		}
		for _, f := range append(slices.Clone(s.Pre), s.Post...) {
			for _, n := range f.Needs {
				needs = append(needs, struct {
					what string
					need Need
				}{f.File, n})
			}
		}
		for _, n := range needs {
			switch {
			case n.need.Stream == s.Name:
				return &StreamError{Msg: fmt.Sprintf("%s needs %s, of its own stream", n.what, n.need),
					Fix: "leave it out: a stream applies its own files in name order"}
			case byName[n.need.Stream] == nil:
				return &StreamError{Msg: fmt.Sprintf("%s needs %s, but the release has no stream %q", n.what, n.need, n.need.Stream),
					Fix: "name a stream listed in the release"}
			}
		}
	}
	// A cycle among the streams' after lists.
	state := map[string]int{} // 1 visiting, 2 done
	var path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			i := slices.Index(path, name)
			cycle := append(slices.Clone(path[i:]), name)
			return &StreamError{Msg: "the streams' after lists make a cycle: " + strings.Join(cycle, " after "),
				Fix: "remove one of these after entries"}
		case 2:
			return nil
		}
		state[name] = 1
		path = append(path, name)
		for _, a := range byName[name].After {
			if err := visit(a); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[name] = 2
		return nil
	}
	for _, s := range streams {
		if err := visit(s.Name); err != nil {
			return err
		}
	}
	return nil
}

// streamOrder returns the streams in an order that honours their after lists, keeping
// the listed order otherwise. checkStreams must have passed.
func streamOrder(streams []*Stream) []*Stream {
	var out []*Stream
	done := map[string]bool{}
	for len(out) < len(streams) {
		for _, s := range streams {
			if done[s.Name] {
				continue
			}
			ready := true
			for _, a := range s.After {
				ready = ready && done[a]
			}
			if ready {
				done[s.Name] = true
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// node is a pending expand step and what it waits for.
type node struct {
	step   StreamStep
	stream int // the stream's index in the release
	seq    int // its index among its stream's pending steps
	needs  []Need
	deps   []int
}

// planStreams computes the pending steps of streams given what hist says was applied,
// in dependency order, and refuses a cycle or a dependency that cannot be met. When
// versionSchema is "", the combined migration's version schema is its last migration's.
func planStreams(streams []*Stream, hist *streamHistory, schema, versionSchema string) (*StreamPlan, error) {
	if err := checkStreams(streams); err != nil {
		return nil, err
	}
	applied := func(stream *Stream, name string) bool {
		if stream.Kind == StreamPgroll {
			return hist.pgroll[stream.recordedName(name)]
		}
		_, pre := hist.sql[sqlKey(stream.Name, PhasePre, name)]
		_, post := hist.sql[sqlKey(stream.Name, PhasePost, name)]
		return pre || post
	}
	byName := map[string]*Stream{}
	var nodes []*node
	index := map[string]int{}           // "<stream>/<name>" -> node
	postPending := map[string]*Stream{} // "<stream>/<name>" of pending post-deploy files
	known := map[string]bool{}          // every migration in the streams' directories
	for si, s := range streams {
		byName[s.Name] = s
		seq := 0
		add := func(st StreamStep, needs []Need) {
			index[st.String()] = len(nodes)
			nodes = append(nodes, &node{step: st, stream: si, seq: seq, needs: needs})
			seq++
		}
		for _, mig := range s.Migrations {
			known[s.Name+"/"+mig.Name] = true
			if !applied(s, mig.Name) {
				add(StreamStep{Stream: s.Name, Kind: StreamPgroll, Name: mig.Name, File: mig.File, Migration: s.qualified(mig)}, mig.Needs)
			}
		}
		for _, f := range s.Pre {
			known[s.Name+"/"+f.Name] = true
			if !applied(s, f.Name) {
				add(StreamStep{Stream: s.Name, Kind: StreamSQL, Phase: PhasePre, Name: f.Name, File: f.File, SQL: f}, f.Needs)
			}
		}
		for _, f := range s.Post {
			known[s.Name+"/"+f.Name] = true
			if !applied(s, f.Name) {
				postPending[s.Name+"/"+f.Name] = s
			}
		}
	}
	// unmet is the error of a need nothing meets.
	unmet := func(what string, n Need) *StreamError {
		return &StreamError{Msg: fmt.Sprintf("%s needs %s, which stream %s has neither applied nor in its directory", what, n, n.Stream),
			Fix: fmt.Sprintf("ship %s in stream %s, or correct the need", n.Migration, n.Stream)}
	}
	for _, nd := range nodes {
		s := streams[nd.stream]
		for j, other := range nodes {
			// Within a stream, each pending step waits for the one before.
			if other.stream == nd.stream && other.seq == nd.seq-1 {
				nd.deps = append(nd.deps, j)
			}
			// A stream after another waits for all of the other's pending steps.
			if slices.Contains(s.After, streams[other.stream].Name) {
				nd.deps = append(nd.deps, j)
			}
		}
		for _, n := range nd.needs {
			if applied(byName[n.Stream], n.Migration) {
				continue
			}
			if j, ok := index[n.String()]; ok {
				nd.deps = append(nd.deps, j)
				continue
			}
			if postPending[n.String()] != nil {
				return nil, &StreamError{Msg: fmt.Sprintf("%s needs %s, a post-deploy file that runs at contract, after it", nd.step.File, n),
					Fix: "apply " + n.String() + " in an earlier release, or make it a pre-deploy file"}
			}
			return nil, unmet(nd.step.File, n)
		}
	}
	order, err := topoOrder(nodes)
	if err != nil {
		return nil, err
	}
	plan := &StreamPlan{}
	var migs []*Migration
	firstPgroll := -1
	for _, i := range order {
		nd := nodes[i]
		if nd.step.Kind == StreamPgroll {
			if firstPgroll < 0 {
				firstPgroll = i
			}
			migs = append(migs, nd.step.Migration)
		} else if firstPgroll >= 0 {
			culprit := pgrollAncestor(nodes, i)
			return nil, &StreamError{
				Msg: fmt.Sprintf("pre-deploy file %s must run after %s (pgroll), pending in the same release: "+
					"an expand step runs the pre-deploy SQL before the pgroll streams' migrations", nd.step.File, nodes[culprit].step),
				Fix: fmt.Sprintf("apply %s in an earlier release, or write %s as a pgroll migration", nodes[culprit].step, nd.step)}
		}
		plan.Expand = append(plan.Expand, nd.step)
	}
	if len(migs) > 0 {
		plan.Combined = Combine(migs)
		if versionSchema != "" {
			plan.Combined.VersionSchema = versionSchema
		} else if plan.Combined.VersionSchema == "" && strings.Contains(plan.Combined.Name, "/") {
			plan.Combined.VersionSchema = VersionSchema(schema, strings.ReplaceAll(plan.Combined.Name, "/", "_"))
		}
	}
	// Post-deploy files: stream by stream in after order, each stream's in name order.
	ran := map[string]bool{}
	for _, s := range streamOrder(streams) {
		for _, f := range s.Post {
			st := StreamStep{Stream: s.Name, Kind: StreamSQL, Phase: PhasePost, Name: f.Name, File: f.File, SQL: f}
			if postPending[st.String()] == nil {
				continue
			}
			for _, n := range f.Needs {
				if applied(byName[n.Stream], n.Migration) || ran[n.String()] {
					continue
				}
				if _, ok := index[n.String()]; ok {
					continue // applied at expand, before
				}
				if postPending[n.String()] != nil {
					return nil, &StreamError{Msg: fmt.Sprintf("post-deploy file %s needs %s, which runs after it", f.File, n),
						Fix: fmt.Sprintf("put stream %s after stream %s", s.Name, n.Stream)}
				}
				return nil, unmet(f.File, n)
			}
			ran[st.String()] = true
			plan.Contract = append(plan.Contract, st)
		}
	}
	return plan, nil
}

// topoOrder orders the nodes so that each comes after its deps: pre-deploy files first
// whenever they can, then by stream, then by each stream's order. A cycle is refused,
// named.
func topoOrder(nodes []*node) ([]int, error) {
	done := make([]bool, len(nodes))
	var order []int
	for len(order) < len(nodes) {
		best := -1
		for i, nd := range nodes {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range nd.deps {
				ready = ready && done[d]
			}
			if !ready {
				continue
			}
			if best < 0 || less(nd, nodes[best]) {
				best = i
			}
		}
		if best < 0 {
			return nil, cycleError(nodes, done)
		}
		done[best] = true
		order = append(order, best)
	}
	return order, nil
}

func less(a, b *node) bool {
	if (a.step.Kind == StreamSQL) != (b.step.Kind == StreamSQL) {
		return a.step.Kind == StreamSQL
	}
	if a.stream != b.stream {
		return a.stream < b.stream
	}
	return a.seq < b.seq
}

// cycleError names a cycle among the nodes not done.
func cycleError(nodes []*node, done []bool) error {
	state := make([]int, len(nodes))
	var path []int
	var found []int
	var visit func(i int) bool
	visit = func(i int) bool {
		if state[i] == 1 {
			found = append(slices.Clone(path[slices.Index(path, i):]), i)
			return true
		}
		if state[i] == 2 || done[i] {
			return false
		}
		state[i] = 1
		path = append(path, i)
		for _, d := range nodes[i].deps {
			if visit(d) {
				return true
			}
		}
		path = path[:len(path)-1]
		state[i] = 2
		return false
	}
	for i := range nodes {
		if !done[i] && visit(i) {
			break
		}
	}
	var names []string
	for k := len(found) - 1; k >= 0; k-- {
		names = append(names, nodes[found[k]].step.String())
	}
	return &StreamError{Msg: "the pending migrations wait for each other in a cycle: " + strings.Join(names, " before "),
		Fix: "remove a needs or after entry of the cycle"}
}

// pgrollAncestor returns a pgroll node that node i waits for, directly or not.
func pgrollAncestor(nodes []*node, i int) int {
	seen := map[int]bool{}
	queue := []int{i}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		for _, d := range nodes[j].deps {
			if seen[d] {
				continue
			}
			seen[d] = true
			if nodes[d].step.Kind == StreamPgroll {
				return d
			}
			queue = append(queue, d)
		}
	}
	return i
}
