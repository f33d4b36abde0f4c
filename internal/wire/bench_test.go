package wire_test

import (
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

func BenchmarkChangeWriterAdd(b *testing.B) {
	r := simple("10.20.30.0/24", "192.0.2.1", "eth0")
	var w wire.ChangeWriter
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		w.Add(seq, wire.OpAdd, r)
		if w.Len() > 1<<20 {
			w.Take()
		}
	}
}

func BenchmarkDecodeChanges(b *testing.B) {
	var w wire.ChangeWriter
	for i := range 4000 {
		w.Add(uint64(i+1), wire.OpAdd, simple("10.20.30.0/24", "192.0.2.1", "eth0"))
	}
	frame := w.Take()[0]
	p := frame[wire.HeaderLen:]
	var d wire.Decoder
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		d.Changes(p, func(wire.Change) { n++ })
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/change")
}

func BenchmarkDecodeRoute(b *testing.B) {
	p := wire.AppendRoute(nil, simple("10.20.30.0/24", "192.0.2.1", "eth0"))
	var d wire.Decoder
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(p)
		_ = d.Route()
	}
	_ = route.Route{}
}
