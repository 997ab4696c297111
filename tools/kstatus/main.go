// Command kstatus reads Kubernetes objects as JSON (one object, a List, or a stream of them) on
// stdin and prints, for each, the status that kstatus (sigs.k8s.io/cli-utils/pkg/kstatus)
// computes: what kubectl wait, Argo CD's and Flux's readiness checks build on. One JSON line per
// object: {"kind", "name", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	decoder := json.NewDecoder(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err == io.EOF {
			return
		} else if err != nil {
			fail(2, "reading objects:", err)
		}
		// The scheme decodes numbers as int64, as the apiserver's own clients do.
		decoded, err := runtime.Decode(unstructured.UnstructuredJSONScheme, raw)
		if err != nil {
			fail(2, "decoding an object:", err)
		}
		objects := []*unstructured.Unstructured{}
		switch found := decoded.(type) {
		case *unstructured.UnstructuredList:
			for i := range found.Items {
				objects = append(objects, &found.Items[i])
			}
		case *unstructured.Unstructured:
			objects = append(objects, found)
		}
		for _, u := range objects {
			result, err := status.Compute(u)
			if err != nil {
				fail(1, u.GetKind(), u.GetName(), err)
			}
			if err := out.Encode(verdict{u.GetKind(), u.GetName(), result.Status.String(), result.Message}); err != nil {
				fail(2, "writing:", err)
			}
		}
	}
}

func fail(code int, what ...interface{}) {
	fmt.Fprintln(os.Stderr, append([]interface{}{"kstatus:"}, what...)...)
	os.Exit(code)
}
