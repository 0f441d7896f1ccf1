package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Metric is one row of the report: the same quantity measured under both
// VMMs, one sample per run.
type Metric struct {
	Section string    `json:"section"`
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Better  string    `json:"better"` // "lower" or "higher"
	Govmm   []float64 `json:"govmm_samples"`
	QEMU    []float64 `json:"qemu_samples"`
	// QEMUNA, when set, says why QEMU has no samples ("n/a" in the table).
	QEMUNA string `json:"qemu_na,omitempty"`

	GovmmSummary *Summary `json:"govmm,omitempty"`
	QEMUSummary  *Summary `json:"qemu,omitempty"`
	Ratio        *float64 `json:"ratio_govmm_over_qemu,omitempty"`
}

// finish fills the summaries and ratio from the samples, and drops NaN
// samples (a phase the guest skipped), which JSON cannot represent.
func (m *Metric) finish() {
	m.Govmm, m.QEMU = dropNaN(m.Govmm), dropNaN(m.QEMU)
	if s, ok := Summarize(m.Govmm); ok {
		m.GovmmSummary = &s
	}
	if s, ok := Summarize(m.QEMU); ok {
		m.QEMUSummary = &s
	}
	if r, ok := Ratio(m.Govmm, m.QEMU); ok {
		m.Ratio = &r
	}
}

func dropNaN(xs []float64) []float64 {
	var out []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Pkg     string  `json:"pkg"`
	Name    string  `json:"name"`
	Iter    int64   `json:"iterations"`
	NsPerOp float64 `json:"ns_per_op"`
}

// Report is everything latest.json holds.
type Report struct {
	Date            string            `json:"date"`
	Host            Host              `json:"host"`
	GovmmPath       string            `json:"govmm_path"`
	GovmmRevision   string            `json:"govmm_revision"`
	GovmmModified   bool              `json:"govmm_modified"`
	QEMUPath        string            `json:"qemu_path"`
	QEMUVersion     string            `json:"qemu_version"`
	Command         string            `json:"command"`
	Invocations     map[string]string `json:"invocations"`
	HarnessFloorKiB int64             `json:"harness_rss_floor_kib"`
	Metrics         []*Metric         `json:"metrics"`
	GoBench         []GoBench         `json:"go_bench,omitempty"`
	GoBenchError    string            `json:"go_bench_error,omitempty"`
	Skipped         []string          `json:"skipped,omitempty"`
	Notes           []string          `json:"notes,omitempty"`
	Errors          []string          `json:"errors,omitempty"`
	DurationSec     float64           `json:"duration_seconds"`
}

// formatNum prints about three significant digits without exponents.
func formatNum(x float64) string {
	a := math.Abs(x)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

func formatSummary(s *Summary) string {
	if s == nil {
		return "-"
	}
	if s.N == 1 {
		return formatNum(s.Median) + " (n=1)"
	}
	return fmt.Sprintf("%s [%s–%s]", formatNum(s.Median), formatNum(s.Min), formatNum(s.Max))
}

// RenderMarkdown renders the report's header and one table per section,
// sections in the order their first metric appears.
func RenderMarkdown(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# govmm vs QEMU (%s)\n\n", r.Date)
	fmt.Fprintf(&b, "- Host: %s, %d CPUs, kernel %s, KVM: %s, load average %s at start, %s at end\n",
		r.Host.CPU, r.Host.CPUs, r.Host.Kernel, r.Host.KVM, r.Host.LoadStart, r.Host.LoadEnd)
	mod := ""
	if r.GovmmModified {
		mod = " + uncommitted changes"
	}
	fmt.Fprintf(&b, "- govmm: %s%s\n", r.GovmmRevision, mod)
	fmt.Fprintf(&b, "- QEMU: %s\n", r.QEMUVersion)
	fmt.Fprintf(&b, "- Command: `%s` (%.0f s)\n", r.Command, r.DurationSec)
	fmt.Fprintf(&b, "- Cells: median [min–max] over the runs; runs alternate govmm, QEMU, govmm, QEMU, ...\n")
	if r.HarnessFloorKiB > 0 {
		fmt.Fprintf(&b, "- Peak RSS floor from the harness itself: %s MiB (see README)\n", formatNum(float64(r.HarnessFloorKiB)/1024))
	}
	b.WriteString("\n")

	var sections []string
	bySection := map[string][]*Metric{}
	for _, m := range r.Metrics {
		if _, ok := bySection[m.Section]; !ok {
			sections = append(sections, m.Section)
		}
		bySection[m.Section] = append(bySection[m.Section], m)
	}
	for _, sec := range sections {
		fmt.Fprintf(&b, "## %s\n\n", sec)
		b.WriteString("| Measurement | Unit | Better | govmm | QEMU | govmm/QEMU |\n")
		b.WriteString("|---|---|---|---:|---:|---:|\n")
		for _, m := range bySection[sec] {
			q := formatSummary(m.QEMUSummary)
			if m.QEMUNA != "" {
				q = "n/a"
			}
			ratio := "-"
			if m.Ratio != nil {
				ratio = formatNum(*m.Ratio)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", m.Name, m.Unit, m.Better, formatSummary(m.GovmmSummary), q, ratio)
		}
		b.WriteString("\n")
	}
	if len(r.GoBench) > 0 || r.GoBenchError != "" {
		b.WriteString("## Go micro-benchmarks (govmm packages)\n\n")
		if r.GoBenchError != "" {
			fmt.Fprintf(&b, "go test -bench failed: %s\n\n", r.GoBenchError)
		}
		if len(r.GoBench) > 0 {
			b.WriteString("| Package | Benchmark | ns/op |\n|---|---|---:|\n")
			for _, g := range r.GoBench {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", g.Pkg, g.Name, formatNum(g.NsPerOp))
			}
			b.WriteString("\n")
		}
	}
	if len(r.Skipped) > 0 || len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, "- skipped: %s\n", s)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if len(r.Invocations) > 0 {
		b.WriteString("## Command lines\n\n")
		keys := make([]string, 0, len(r.Invocations))
		for k := range r.Invocations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "- %s: `%s`\n", k, r.Invocations[k])
		}
		b.WriteString("\n")
	}
	if len(r.Errors) > 0 {
		b.WriteString("## Harness errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
		b.WriteString("\n")
	}
	return b.String()
}
