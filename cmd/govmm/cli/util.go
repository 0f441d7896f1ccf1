package cli

import (
	"sort"

	"github.com/govmm/govmm/machine"
)

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func featureOf(name string, on bool) machine.CPUFeature {
	return machine.CPUFeature{Name: name, On: on}
}
