package deploy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifests are the objects a chart rendered, decoded into their API types, by name.
type manifests struct {
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	jobs         map[string]*batchv1.Job
}

// decodeStrict decodes a multi-document YAML stream as the API server would, and more
// strictly: duplicated fields and fields the type lacks are errors (an object the API
// server would refuse or silently trim), as is a kind the chart is not expected to render.
func decodeStrict(stream string) (*manifests, error) {
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		statefulSets: map[string]*appsv1.StatefulSet{}, jobs: map[string]*batchv1.Job{}}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for n := 0; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w\n%s", n, err, doc)
		}
		if string(js) == "null" {
			continue // only comments
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		var obj any
		var stored bool
		switch gvk, name := head.APIVersion+"/"+head.Kind, head.Metadata.Name; gvk {
		case "v1/ConfigMap":
			obj, stored = put(m.configMaps, name)
		case "v1/Service":
			obj, stored = put(m.services, name)
		case "apps/v1/StatefulSet":
			obj, stored = put(m.statefulSets, name)
		case "batch/v1/Job":
			obj, stored = put(m.jobs, name)
		default:
			return nil, fmt.Errorf("document %d: %s %q: a kind these tests do not decode (add it to decodeStrict)", n, gvk, name)
		}
		if !stored {
			return nil, fmt.Errorf("document %d: two %s named %q", n, head.Kind, head.Metadata.Name)
		}
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", head.Kind, head.Metadata.Name, err)
		}
		if len(strict) > 0 {
			return nil, fmt.Errorf("%s %q: %v", head.Kind, head.Metadata.Name, errors.Join(strict...))
		}
	}
}

// put makes a new object of type T under name in objs, unless the name is taken.
func put[T any](objs map[string]*T, name string) (*T, bool) {
	if _, dup := objs[name]; dup || name == "" {
		return nil, false
	}
	o := new(T)
	objs[name] = o
	return o, true
}

// render runs helm template on the chart with values (nil: the defaults) and decodes the
// result strictly.
func render(t *testing.T, values map[string]any) *manifests {
	t.Helper()
	out, err := helm(t, templateArgs(t, values)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeStrict(out)
	if err != nil {
		t.Fatalf("rendered manifests: %v\n%s", err, out)
	}
	return m
}

// templateArgs are helm template's arguments for a release "fl" in namespace "federation".
func templateArgs(t *testing.T, values map[string]any) []string {
	return append([]string{"template", "fl", chartDir, "--namespace", "federation"}, valuesArgs(t, values)...)
}

// valuesArgs writes values to a file and returns the -f flag naming it (none for nil).
func valuesArgs(t *testing.T, values map[string]any) []string {
	t.Helper()
	if values == nil {
		return nil
	}
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", path}
}
