package main

import (
	"math"
	"sort"
)

// Summary describes a set of samples by its median and spread. The
// quartiles use linear interpolation between order statistics (the same
// method as R's default and numpy's "linear"), so they are defined for any
// sample count from 1 up.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Q1     float64 `json:"q1"`
	Q3     float64 `json:"q3"`
}

// Summarize returns the summary of samples; ok is false when there are
// none. NaN samples (a run that measured nothing) are left out.
func Summarize(samples []float64) (s Summary, ok bool) {
	xs := make([]float64, 0, len(samples))
	for _, x := range samples {
		if !math.IsNaN(x) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return Summary{}, false
	}
	sort.Float64s(xs)
	return Summary{
		N:      len(xs),
		Median: quantile(xs, 0.5),
		Min:    xs[0],
		Max:    xs[len(xs)-1],
		Q1:     quantile(xs, 0.25),
		Q3:     quantile(xs, 0.75),
	}, true
}

// quantile returns the q-quantile of sorted, non-empty xs.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return xs[lo] + (xs[hi]-xs[lo])*frac
}

// Ratio is govmm's median over QEMU's; ok is false when either is missing
// or QEMU's is zero.
func Ratio(govmm, qemu []float64) (r float64, ok bool) {
	g, gok := Summarize(govmm)
	q, qok := Summarize(qemu)
	if !gok || !qok || q.Median == 0 {
		return 0, false
	}
	return g.Median / q.Median, true
}
