package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/tandem-pg/tandem/internal/report"
)

// Object is one Kubernetes object the checks read. Exactly one of Deployment, PVC and
// PDB is set for the kinds the checks use; other kinds are counted but not kept.
type Object struct {
	Kind      string
	Namespace string
	Name      string
	// File and Line locate the object's start in its manifest; for an object read from
	// the cluster File names the cluster and Line is 0.
	File string
	Line int

	Deployment *appsv1.Deployment
	PVC        *corev1.PersistentVolumeClaim
	PDB        *policyv1.PodDisruptionBudget

	node *yaml.Node // the object's mapping in its manifest; nil when read from the cluster
}

// Ref names the object as kind/namespace/name.
func (o *Object) Ref() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// pos returns the line and column of the deepest node of path (keys and sequence
// indexes) that the manifest holds, or the object's start.
func (o *Object) pos(path ...any) (int, int) {
	line, col := o.Line, 0
	n := o.node
	if n != nil {
		col = n.Column
	}
	for _, p := range path {
		if n == nil {
			break
		}
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, col = n.Content[i].Line, n.Content[i].Column
					next = n.Content[i+1]
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line, col = next.Line, next.Column
			}
		}
		n = next
	}
	return line, col
}

// Skipped is a document the checks did not read: not a Kubernetes object.
type Skipped = report.Skipped

// Input is what a [Source] read.
type Input struct {
	Objects []*Object
	// Files counts the files read ("-" counts as one); 0 for a cluster.
	Files int
	// Read counts every object read, of any kind.
	Read    int
	Skipped []Skipped
}

// Source yields the objects to check: manifests ([Files]) or a live cluster. The checks
// are the same whatever the source.
type Source interface {
	Read(ctx context.Context) (*Input, error)
}

// InputError is input the checks cannot read: the file, the line and what is wrong.
type InputError struct {
	File string
	Line int
	Msg  string
	Err  error
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *InputError) Unwrap() error { return e.Err }

// Files reads manifests: files, directories (recursively, every *.yaml, *.yml and
// *.json in name order) and "-" for Stdin. A file may hold several documents, and a
// document may be a List.
type Files struct {
	Paths []string
	Stdin io.Reader
	// Namespace is the namespace of objects that name none [default].
	Namespace string
}

// Read reads every path.
func (f Files) Read(ctx context.Context) (*Input, error) {
	in := &Input{}
	for _, p := range f.Paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p == "-" {
			if f.Stdin == nil {
				return nil, &InputError{File: "-", Msg: "no standard input to read"}
			}
			data, err := io.ReadAll(f.Stdin)
			if err != nil {
				return nil, &InputError{File: "-", Msg: "read standard input: " + err.Error(), Err: err}
			}
			if err := in.parse("-", data, f.Namespace); err != nil {
				return nil, err
			}
			continue
		}
		files, err := manifestFiles(p)
		if err != nil {
			return nil, err
		}
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, &InputError{File: name, Msg: "read: " + err.Error(), Err: err}
			}
			if err := in.parse(name, data, f.Namespace); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// manifestFiles lists path itself, or the manifests under the directory path.
func manifestFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &InputError{File: path, Msg: "not found: give a manifest file, a directory of manifests, or - for standard input", Err: err}
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, &InputError{File: path, Msg: "read directory: " + err.Error(), Err: err}
	}
	if len(files) == 0 {
		return nil, &InputError{File: path, Msg: "no *.yaml, *.yml or *.json manifests in this directory"}
	}
	sort.Strings(files)
	return files, nil
}

// yamlLine finds the line in a YAML error: "yaml: line 12: ". Compiled on first use, so
// that commands that do not check manifests do not pay for it at start-up.
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): `) })

// fieldPath finds the field in a decoding error: "Go struct field DeploymentSpec.spec.replicas".
var fieldPath = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`Go struct field [A-Za-z0-9]+\.([A-Za-z0-9.]+) of type`)
})

// Parse reads the objects in one manifest file's data, named file in messages.
func Parse(file string, data []byte, namespace string) (*Input, error) {
	in := &Input{}
	if err := in.parse(file, data, namespace); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Input) parse(file string, data []byte, namespace string) error {
	in.Files++
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			ie := &InputError{File: file, Msg: "not valid YAML or JSON: " + err.Error(), Err: err}
			if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
				ie.Line, _ = strconv.Atoi(m[1])
				ie.Msg = "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), m[0])
			}
			if bytes.Contains(data, []byte("{{")) {
				ie.Msg += " (a Helm template? render it first: helm template ... | tandem check -)"
			} else {
				ie.Msg += " (check the indentation and quoting)"
			}
			return ie
		}
		if len(doc.Content) == 0 {
			continue // an empty document
		}
		if err := in.add(file, doc.Content[0], namespace); err != nil {
			return err
		}
	}
}

// add reads one object, or the items of a List.
func (in *Input) add(file string, n *yaml.Node, namespace string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		in.Skipped = append(in.Skipped, Skipped{File: file, Line: n.Line, Reason: "not a Kubernetes object"})
		return nil
	}
	kind := scalar(n, "kind")
	if kind == "" {
		in.Skipped = append(in.Skipped, Skipped{File: file, Line: n.Line, Reason: "no kind"})
		return nil
	}
	if kind == "List" || strings.HasSuffix(kind, "List") && value(n, "items") != nil {
		items := value(n, "items")
		if items == nil || items.Kind != yaml.SequenceNode {
			if items != nil && items.Tag == "!!null" {
				return nil
			}
			return &InputError{File: file, Line: n.Line, Msg: kind + " without a list of items"}
		}
		for _, it := range items.Content {
			if err := in.add(file, it, namespace); err != nil {
				return err
			}
		}
		return nil
	}
	in.Read++
	o := &Object{Kind: kind, File: file, Line: n.Line, node: n}
	var target any
	switch kind {
	case "Deployment":
		o.Deployment = &appsv1.Deployment{}
		target = o.Deployment
	case "PersistentVolumeClaim":
		o.PVC = &corev1.PersistentVolumeClaim{}
		target = o.PVC
	case "PodDisruptionBudget":
		o.PDB = &policyv1.PodDisruptionBudget{}
		target = o.PDB
	default:
		return nil
	}
	raw, err := yaml.Marshal(n)
	if err != nil {
		return &InputError{File: file, Line: n.Line, Msg: kind + ": " + err.Error(), Err: err}
	}
	if err := sigsyaml.Unmarshal(raw, target); err != nil {
		line := n.Line
		if m := fieldPath().FindStringSubmatch(err.Error()); m != nil {
			var path []any
			for _, k := range strings.Split(m[1], ".") {
				path = append(path, k)
			}
			line, _ = o.pos(path...)
		}
		return &InputError{File: file, Line: line, Err: err,
			Msg: fmt.Sprintf("%s %s is not a valid %s: %s (correct the field's value; kubectl explain shows its type)",
				kind, scalar(value(n, "metadata"), "name"), kind, decodeMsg(err))}
	}
	switch {
	case o.Deployment != nil:
		o.Namespace, o.Name = o.Deployment.Namespace, o.Deployment.Name
	case o.PVC != nil:
		o.Namespace, o.Name = o.PVC.Namespace, o.PVC.Name
	case o.PDB != nil:
		o.Namespace, o.Name = o.PDB.Namespace, o.PDB.Name
	}
	if o.Name == "" {
		return &InputError{File: file, Line: n.Line, Msg: kind + " without metadata.name"}
	}
	if o.Namespace == "" {
		o.Namespace = namespace
		if o.Namespace == "" {
			o.Namespace = "default"
		}
	}
	in.Objects = append(in.Objects, o)
	return nil
}

// decodeMsg shortens the JSON decoder's message.
func decodeMsg(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error unmarshaling JSON: ")
	return strings.TrimPrefix(s, "while decoding JSON: ")
}

// value returns the value of key in mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// scalar returns the scalar value of key in mapping n, or "".
func scalar(n *yaml.Node, key string) string {
	if v := value(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}
